# patience_sim.py — when would -patience P have ended a search that ran without it?
# Replays DIR/events.jsonl with the search's ranking (the higher level, then the
# higher accuracy, then the earlier evaluation) and the rule of evo_stood_for
# (evo/search.c): once the initial population is evaluated, the search ends at the
# first event after which the best has stood for P x the search's time.
#   python3 patience_sim.py DIR/events.jsonl POPULATION HOURS FINAL_SHARE PATIENCE
import json, sys
path, pop, hours, final, patience = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
S = hours * 3600 * (1 - final)
ind = {}
best = None
def key(i):
    v = ind[i]; return (v['rung'], v['acc'], -v['eval'])
for line in open(path):
    e = json.loads(line)
    t = e['elapsed']
    if e.get('event') == 'promotion':
        if e['outcome'] == 'ok':
            v = ind[e['id']]; v['rung'] = e['rung']; v['acc'] = e['accuracy']; v['at'] = t
    else:
        ind[e['id']] = {'rung': 0, 'acc': e['accuracy'] if e['outcome'] == 'ok' else -1, 'eval': e['eval'], 'at': t}
    b = max(ind, key=key)
    if len(ind) >= pop and t - ind[b]['at'] >= patience * S:
        print(f"stops at {t/60:.1f} min (eval {e['eval']}): best {b} level {ind[b]['rung']} val {100*ind[b]['acc']:.2f}% stood {(t-ind[b]['at'])/60:.1f} min; final gets {(hours*3600-t)/60:.1f} min")
        break
else:
    print("never stops")
