import json,sys
def traj(f):
    best=0; out=[]; n=0
    for l in open(f):
        e=json.loads(l); n+=1
        if e.get('rung',0)<2 or e.get('outcome')!='ok': continue
        if e['accuracy']>best: best=e['accuracy']; out.append((e['elapsed']/60,best,e['params']))
    return out, e['elapsed']/60
runs=[('all (f6662dc)', 'backup/bench-evolve-2h-s3/trivial-3/events.jsonl'),
      ('head, flatten at any size', 'backup/bench-evolve-2h-s3-hm/trivial-3/events.jsonl'),
      ('head, flatten at <= 1/16', 'backup/bench-evolve-2h-s3-fl/trivial-3/events.jsonl')]
T=[traj(f) for _,f in runs]
print("best validation accuracy of a level-2 individual (1200 steps, 5000 holdout images) and its parameters,")
print("by minute of the search; trivial seed, -seed 3, 2-core Intel Xeon, scripts/bench-evolve (2 h all included)")
print("%-8s" % "minute" + "".join("| %-28s" % n for n,_ in runs))
for t in [2,5,10,15,20,25,30,40,50,60,70,84]:
    row="%-8d" % t
    for tr,end in T:
        if t>end+0.5: row+="| %-28s" % "(stopped)"; continue
        b=(0,0,0)
        for x in tr:
            if x[0]<=t: b=x
        row+="| %-28s" % ("%.2f%%  %6d params" % (100*b[1], b[2]))
    print(row)
