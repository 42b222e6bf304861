/*
 * fibers.c — real blocks for the full mode of the host emulator (make EMU=1
 * EMU_BLOCKS=full, in build-emu-full/): cu2cpp keeps THREADS and WARP, and
 * the launcher of include/cuda_runtime.h runs each block here, its threads as
 * cooperative fibers on the calling host thread, one block after another.
 *
 * Scheduling. A block's threads start in order of their linear index
 * (x fastest); each runs until it returns, reaches __syncthreads or a warp
 * operation (shuffles, __syncwarp, votes), and the next runnable one goes on
 * (DN_EMU_ORDER=reverse: in the opposite order, and blocks too, so that a
 * result depending on the order shows as a difference between two runs).
 * When none can run:
 *   - a warp operation completes when every lane its mask names waits at one
 *     with the same operation, mask and width: each lane then gets its
 *     partner's value (computed here, before any lane goes on);
 *   - __syncthreads completes when every thread of the block waits at it,
 *     all at the same source line;
 *   - anything else is an error of the kernel, reported with the kernel,
 *     block, threads and source lines, then abort(): a thread that returned
 *     while others wait at __syncthreads (divergent barrier), threads at
 *     different __syncthreads, a warp operation whose mask leaves out the
 *     caller, names a lane that does not exist or has returned, or that the
 *     lanes disagree on (operation, mask, width), a shuffle that reads a lane
 *     outside the mask, a deadlock (lanes of a warp operation waiting at
 *     __syncthreads). On a GPU these are undefined behaviour or a hang.
 *     One check is stricter than CUDA, which lets a mask name lanes that
 *     returned as long as no lane reads them: here that is an error. Lanes
 *     may meet at warp operations on different source lines (as on sm_70
 *     and later); threads may not at __syncthreads.
 *
 * Fibers switch with a few lines of assembly on x86-64 (callee-saved
 * registers, MXCSR and the x87 control word; no system call), elsewhere (or
 * with -DGPU_EMU_UCONTEXT) with ucontext (ten times slower: a system call
 * per switch; ASan warns once that it does not fully support it). Stacks: 256 KiB each, with a
 * guard page below, mmap'ed once per host thread for the largest block seen
 * (pages are only committed when touched) and kept until the thread exits.
 * Under AddressSanitizer every switch is announced with
 * __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber, so
 * ASan knows which stack is current and reports nothing false.
 *
 * __shared__ variables are static thread_local (cuda_runtime.h): one block at
 * a time per host thread makes them per block. cu2cpp --full follows each
 * __shared__ declaration inside a function with gpu_emu_shared_fresh(), which
 * fills the variable with 0xff bytes (NaN floats) the first time a thread of
 * a new block reaches it, so a read before the block wrote shows.
 */
#include "gpu_emu.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__) && !defined(GPU_EMU_UCONTEXT)
#define GPU_EMU_UCONTEXT 1
#endif
#ifdef GPU_EMU_UCONTEXT
#include <ucontext.h>
#endif

#define MAX_THREADS 1024              /* a block, as CUDA */
#define LANES 32                      /* a warp */
#define STACK_BYTES ((size_t)256 << 10)
#define MAX_SHARED 64                 /* __shared__ variables one block reaches */

enum { RUNNABLE, AT_BARRIER, AT_WARP, DONE };

typedef struct {
#ifdef GPU_EMU_UCONTEXT
    ucontext_t uc;
#else
    void *sp;
#endif
} context;

typedef struct {
    context ctx;
    char *stack;              /* lowest usable byte; STACK_BYTES of it */
    void *fake_stack;         /* ASan's, while switched out */
    int state;
    unsigned tid;             /* linear index in the block */
    gpu_emu_uint3 idx;
    const char *file;         /* where it waits */
    int line;
    int op, arg, width;       /* the warp operation it waits at */
    unsigned mask;
    unsigned long long value, result;
} fiber;

typedef struct {
    fiber *fibers;
    unsigned cap;             /* fibers with a stack */
    char *map;                /* their stacks and guard pages */
    size_t map_bytes;
    context main;             /* the host thread's own stack */
    void *main_fake;
    const void *main_bottom;
    size_t main_size;
    fiber *cur;               /* running, or NULL */
    unsigned n, done;         /* threads of the block, returned so far */
    void (*body)(void *);
    void *arg;
    gpu_emu_uint3 *thread_idx;
    const char *kernel;
    gpu_emu_uint3 block, dim;
    const void *shared[MAX_SHARED];   /* __shared__ variables fresh in this block */
    unsigned nshared;
} sched;

static _Thread_local sched *S;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int reverse;
static atomic_long n_blocks, n_threads, n_barriers, n_warp_ops, n_lanes;

static const char *const op_names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                       "__syncwarp", "__ballot_sync", "__any_sync", "__all_sync"};

/* ------------------------------------------------------------ ASan's view of the stacks */

static void start_switch(void **fake_save, const void *bottom, size_t size)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
    (void)fake_save; (void)bottom; (void)size;
#endif
}

static void finish_switch(void *fake_save, const void **old_bottom, size_t *old_size)
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_save, old_bottom, old_size);
#else
    (void)fake_save; (void)old_bottom; (void)old_size;
#endif
}

/* ------------------------------------------------------------ contexts */

static void fiber_main(void);

#ifdef GPU_EMU_UCONTEXT
static void ctx_init(fiber *f)
{
    if (getcontext(&f->ctx.uc)) { perror("gpu_emu: getcontext"); abort(); }
    f->ctx.uc.uc_stack.ss_sp = f->stack;
    f->ctx.uc.uc_stack.ss_size = STACK_BYTES;
    f->ctx.uc.uc_link = NULL;
    makecontext(&f->ctx.uc, fiber_main, 0);
}

static void ctx_switch(context *from, context *to)
{
    if (swapcontext(&from->uc, &to->uc)) { perror("gpu_emu: swapcontext"); abort(); }
}
#else
/* gpu_emu_ctx_switch(&from_sp, to_sp): saves the callee-saved registers,
 * MXCSR and the x87 control word on the current stack, stores the stack
 * pointer in *from_sp, loads to_sp and restores the same from there. */
__attribute__((visibility("hidden"))) void gpu_emu_ctx_switch(void **from_sp, void *to_sp);
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".globl gpu_emu_ctx_switch\n"
        ".hidden gpu_emu_ctx_switch\n"
        ".type gpu_emu_ctx_switch, @function\n"
        "gpu_emu_ctx_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size gpu_emu_ctx_switch, .-gpu_emu_ctx_switch\n"
        ".popsection\n");

/* A frame that gpu_emu_ctx_switch "returns" from into fiber_main, entered as
 * if called (the stack pointer 8 bytes below a 16-byte boundary). */
static void ctx_init(fiber *f)
{
    uint64_t *sp = (uint64_t *)(((uintptr_t)f->stack + STACK_BYTES) & ~(uintptr_t)15);
    uint32_t csr[2];
    __asm__ volatile("stmxcsr %0" : "=m"(csr[0]));
    __asm__ volatile("fnstcw %0" : "=m"(csr[1]));
    *--sp = 0;                            /* fiber_main's return address: it never returns */
    *--sp = (uint64_t)(uintptr_t)fiber_main;
    for (int i = 0; i < 6; ++i) *--sp = 0;   /* rbp rbx r12 r13 r14 r15 */
    --sp;
    memcpy(sp, csr, sizeof csr);
    f->ctx.sp = sp;
}

static void ctx_switch(context *from, context *to) { gpu_emu_ctx_switch(&from->sp, to->sp); }
#endif

/* ------------------------------------------------------------ per host thread */

static void release(void *p)
{
    sched *s = p;
    if (!s) return;
    if (s->map) {
#ifdef EMU_ASAN
        __asan_unpoison_memory_region(s->map, s->map_bytes);
#endif
        munmap(s->map, s->map_bytes);
    }
    free(s->fibers);
    free(s);
}

static long env_order(void)
{
    const char *v = getenv("DN_EMU_ORDER");
    if (!v || !*v || !strcmp(v, "forward")) return 0;
    if (!strcmp(v, "reverse")) return 1;
    fprintf(stderr, "gpu_emu: DN_EMU_ORDER=%s is neither forward nor reverse; using forward\n", v);
    return 0;
}

static void configure(void)
{
    if (pthread_key_create(&key, release)) { perror("gpu_emu: pthread_key_create"); abort(); }
    reverse = (int)env_order();
}

int gpu_emu_reverse_order(void)
{
    pthread_once(&once, configure);
    return reverse;
}

static sched *get_sched(void)
{
    if (S) return S;
    pthread_once(&once, configure);
    sched *s = calloc(1, sizeof *s);
    if (!s) { fprintf(stderr, "gpu_emu: out of host memory for fibers\n"); abort(); }
    S = s;
    pthread_setspecific(key, s);
    return s;
}

/* Fibers with stacks for n threads. */
static void reserve(sched *s, unsigned n)
{
    if (n <= s->cap) return;
    unsigned cap = n < 256 ? 256 : n;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), slot = STACK_BYTES + page;
    fiber *fibers = realloc(s->fibers, cap * sizeof *fibers);
    if (!fibers) { fprintf(stderr, "gpu_emu: out of host memory for fibers\n"); abort(); }
    s->fibers = fibers;
    if (s->map) {
#ifdef EMU_ASAN
        __asan_unpoison_memory_region(s->map, s->map_bytes);
#endif
        munmap(s->map, s->map_bytes);
    }
    s->map_bytes = cap * slot;
    s->map = mmap(NULL, s->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->map == MAP_FAILED) { perror("gpu_emu: mmap of fiber stacks"); abort(); }
    for (unsigned i = 0; i < cap; ++i) {
        char *guard = s->map + i * slot;
        if (mprotect(guard, page, PROT_NONE)) { perror("gpu_emu: mprotect"); abort(); }
        fibers[i].stack = guard + page;
    }
    s->cap = cap;
}

/* ------------------------------------------------------------ errors */

static const char *state_name(const fiber *f)
{
    switch (f->state) {
    case AT_BARRIER: return "waits at __syncthreads";
    case AT_WARP: return op_names[f->op];
    case DONE: return "returned";
    default: return "runnable";
    }
}

static int same_state(const fiber *a, const fiber *b)
{
    if (a->state != b->state) return 0;
    if (a->state != AT_BARRIER && a->state != AT_WARP) return 1;
    if (a->line != b->line || strcmp(a->file, b->file) != 0) return 0;
    return a->state == AT_BARRIER || (a->op == b->op && a->mask == b->mask);
}

/* The kernel did something undefined: say what, where, the state of every
 * thread (runs of equal ones folded), and stop. */
__attribute__((noreturn, format(printf, 2, 3))) static void kernel_error(const sched *s, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gpu_emu: ERROR in kernel %s, block (%u,%u,%u) of %u threads: ", s->kernel, s->block.x,
            s->block.y, s->block.z, s->n);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    for (unsigned t = 0, u; t < s->n; t = u) {
        const fiber *f = &s->fibers[t];
        for (u = t + 1; u < s->n && same_state(f, &s->fibers[u]);) ++u;
        fprintf(stderr, "gpu_emu:   thread%s %u", u - t > 1 ? "s" : "", t);
        if (u - t > 1) fprintf(stderr, "..%u", u - 1);
        fprintf(stderr, ": %s", state_name(f));
        if (f->state == AT_BARRIER || f->state == AT_WARP) fprintf(stderr, " at %s:%d", f->file, f->line);
        if (f->state == AT_WARP) fprintf(stderr, " (mask 0x%08x)", f->mask);
        fputc('\n', stderr);
    }
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------ running a block */

static void fiber_main(void)
{
    sched *s = S;
    finish_switch(NULL, &s->main_bottom, &s->main_size);
    s->body(s->arg);
    fiber *f = s->cur;
    f->state = DONE;
    ++s->done;
    start_switch(NULL, s->main_bottom, s->main_size);   /* NULL: this fiber's fake stack goes */
    ctx_switch(&f->ctx, &s->main);
    abort();   /* never resumed */
}

static void resume(sched *s, fiber *f)
{
    *s->thread_idx = f->idx;
    s->cur = f;
    start_switch(&s->main_fake, f->stack, STACK_BYTES);
    ctx_switch(&s->main, &f->ctx);
    finish_switch(s->main_fake, NULL, NULL);
    s->cur = NULL;
}

/* From a fiber: back to the scheduler until it is runnable again. */
static void yield(sched *s, fiber *f)
{
    start_switch(&f->fake_stack, s->main_bottom, s->main_size);
    ctx_switch(&f->ctx, &s->main);
    finish_switch(f->fake_stack, &s->main_bottom, &s->main_size);
}

static fiber *current(const char *what)
{
    sched *s = S;
    if (!s || !s->cur) gpu_emu_unsupported(what, "host code (outside a kernel)");
    return s->cur;
}

/* Lane `lane` of the group at warp base `base` (the group is complete):
 * what its operation returns. */
static unsigned long long warp_result(const sched *s, unsigned base, unsigned lane)
{
    const fiber *f = &s->fibers[base + lane];
    unsigned w = (unsigned)f->width, seg = lane & ~(w - 1), src = lane, d = (unsigned)f->arg;
    unsigned long long votes = 0;
    switch (f->op) {
    case GPU_EMU_SHFL_IDX: src = seg + (d & (w - 1)); break;
    case GPU_EMU_SHFL_UP: src = lane - seg >= d ? lane - d : lane; break;
    case GPU_EMU_SHFL_DOWN: src = (lane - seg) + (unsigned long long)d < w ? lane + d : lane; break;
    case GPU_EMU_SHFL_XOR: src = (lane ^ d) < seg + w ? lane ^ d : lane; break;
    case GPU_EMU_SYNCWARP: return 0;
    default:   /* votes */
        for (unsigned l = 0; l < LANES; ++l)
            if ((f->mask >> l & 1) && s->fibers[base + l].value) votes |= 1ull << l;
        if (f->op == GPU_EMU_BALLOT) return votes;
        if (f->op == GPU_EMU_ANY) return votes != 0;
        return votes == f->mask;
    }
    if (src != lane && !(f->mask >> src & 1))
        kernel_error(s, "warp %u lane %u: %s at %s:%d reads lane %u, which its mask 0x%08x leaves out (undefined value)",
                     base / LANES, lane, op_names[f->op], f->file, f->line, src, f->mask);
    return s->fibers[base + src].value;
}

/* Completes every warp operation whose lanes all arrived; how many. */
static unsigned release_warps(sched *s)
{
    unsigned released = 0;
    for (unsigned base = 0; base < s->n; base += LANES) {
        unsigned lanes = s->n - base < LANES ? s->n - base : LANES;
        for (unsigned l = 0; l < lanes; ++l) {
            fiber *f = &s->fibers[base + l];
            if (f->state != AT_WARP) continue;
            int ready = 1;
            for (unsigned k = 0; k < LANES; ++k) {
                if (!(f->mask >> k & 1)) continue;
                if (k >= lanes)
                    kernel_error(s, "warp %u lane %u: %s at %s:%d with mask 0x%08x names lane %u, which does not exist",
                                 base / LANES, l, op_names[f->op], f->file, f->line, f->mask, k);
                const fiber *g = &s->fibers[base + k];
                if (g->state == DONE)
                    kernel_error(s, "warp %u lane %u: %s at %s:%d with mask 0x%08x waits for lane %u, which returned",
                                 base / LANES, l, op_names[f->op], f->file, f->line, f->mask, k);
                if (g->state != AT_WARP) { ready = 0; continue; }
                if (g->op != f->op || g->mask != f->mask || g->width != f->width)
                    kernel_error(s, "warp %u: lanes %u and %u disagree: %s mask 0x%08x width %d at %s:%d against "
                                 "%s mask 0x%08x width %d at %s:%d", base / LANES, l, k, op_names[f->op], f->mask,
                                 f->width, f->file, f->line, op_names[g->op], g->mask, g->width, g->file, g->line);
            }
            if (!ready) continue;
            unsigned n = 0;
            for (unsigned k = 0; k < LANES; ++k)
                if (f->mask >> k & 1) s->fibers[base + k].result = warp_result(s, base, k), ++n;
            for (unsigned k = 0; k < LANES; ++k)
                if (f->mask >> k & 1) s->fibers[base + k].state = RUNNABLE;
            if (n > 1) {
                atomic_fetch_add_explicit(&n_warp_ops, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&n_lanes, n, memory_order_relaxed);
            }
            ++released;
        }
    }
    return released;
}

/* Completes __syncthreads when every thread waits there; whether it did. */
static int release_barrier(sched *s)
{
    const fiber *first = NULL, *gone = NULL;
    for (unsigned t = 0; t < s->n; ++t) {
        const fiber *f = &s->fibers[t];
        if (f->state == DONE) { if (!gone) gone = f; continue; }
        if (f->state != AT_BARRIER) return 0;
        if (!first) first = f;
        else if (f->line != first->line || strcmp(f->file, first->file) != 0)
            kernel_error(s, "threads wait at different __syncthreads: thread %u at %s:%d, thread %u at %s:%d "
                         "(a barrier in divergent code)", first->tid, first->file, first->line, f->tid, f->file,
                         f->line);
    }
    if (!first) return 0;
    if (gone)
        kernel_error(s, "thread %u returned while %u thread(s) wait at __syncthreads at %s:%d (a barrier in "
                     "divergent code)", gone->tid, s->n - s->done, first->file, first->line);
    for (unsigned t = 0; t < s->n; ++t) s->fibers[t].state = RUNNABLE;
    if (s->n > 1) atomic_fetch_add_explicit(&n_barriers, 1, memory_order_relaxed);
    return 1;
}

void gpu_emu_run_block(const char *kernel, gpu_emu_uint3 block, gpu_emu_uint3 dim, gpu_emu_uint3 *thread_idx,
                       void (*body)(void *), void *arg)
{
    sched *s = get_sched();
    if (s->cur) gpu_emu_unsupported("a kernel launch", "a kernel");
    unsigned n = dim.x * dim.y * dim.z;
    if (n < 1 || n > MAX_THREADS) gpu_emu_unsupported("a block of more than 1024 threads", kernel);
    reserve(s, n);
    s->n = n;
    s->done = 0;
    s->body = body;
    s->arg = arg;
    s->thread_idx = thread_idx;
    s->kernel = kernel;
    s->block = block;
    s->dim = dim;
    s->nshared = 0;
    for (unsigned t = 0; t < n; ++t) {
        fiber *f = &s->fibers[t];
        f->state = RUNNABLE;
        f->tid = t;
        f->idx = (gpu_emu_uint3){t % dim.x, t / dim.x % dim.y, t / (dim.x * dim.y)};
        f->fake_stack = NULL;
        f->file = "";
        f->line = 0;
        f->mask = 0;
        ctx_init(f);
    }
    for (;;) {
        for (unsigned k = 0; k < n; ++k) {
            fiber *f = &s->fibers[reverse ? n - 1 - k : k];
            if (f->state == RUNNABLE) resume(s, f);
        }
        if (s->done == n) break;
        if (release_warps(s) || release_barrier(s)) continue;
        kernel_error(s, "deadlock: no thread can go on (a warp operation whose lanes wait at __syncthreads, or "
                     "__syncthreads with lanes waiting at a warp operation)");
    }
    atomic_fetch_add_explicit(&n_blocks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n_threads, n, memory_order_relaxed);
}

/* ------------------------------------------------------------ from kernel code */

void gpu_emu_syncthreads(const char *file, int line)
{
    fiber *f = current("__syncthreads");
    f->state = AT_BARRIER;
    f->file = file;
    f->line = line;
    yield(S, f);
}

unsigned long long gpu_emu_warp_op(int op, unsigned mask, unsigned long long value, int arg, int width,
                                   const char *file, int line)
{
    fiber *f = current(op >= 0 && op <= GPU_EMU_ALL ? op_names[op] : "a warp operation");
    sched *s = S;
    unsigned lane = f->tid % LANES;
    f->file = file;
    f->line = line;
    if (!(mask >> lane & 1))
        kernel_error(s, "thread %u (warp %u lane %u): %s at %s:%d with mask 0x%08x, which leaves out the caller",
                     f->tid, f->tid / LANES, lane, op_names[op], file, line, mask);
    if (op <= GPU_EMU_SHFL_XOR && (width < 1 || width > LANES || (width & (width - 1))))
        kernel_error(s, "thread %u: %s at %s:%d with width %d (not a power of two in [1, 32])", f->tid,
                     op_names[op], file, line, width);
    f->state = AT_WARP;
    f->op = op;
    f->mask = mask;
    f->arg = arg;
    f->width = op <= GPU_EMU_SHFL_XOR ? width : LANES;
    f->value = value;
    yield(s, f);
    return f->result;
}

void gpu_emu_shared_fresh(void *p, size_t bytes)
{
    sched *s = S;
    if (!s || !s->cur) return;
    for (unsigned i = 0; i < s->nshared; ++i)
        if (s->shared[i] == p) return;
    if (s->nshared == MAX_SHARED) gpu_emu_unsupported("more than 64 __shared__ variables in a block", s->kernel);
    s->shared[s->nshared++] = p;
    memset(p, 0xff, bytes);
}

/* ------------------------------------------------------------ counts */

void gpu_emu_block_counts(gpu_emu_counts *c)
{
    c->blocks = atomic_load(&n_blocks);
    c->threads = atomic_load(&n_threads);
    c->barriers = atomic_load(&n_barriers);
    c->warp_ops = atomic_load(&n_warp_ops);
    c->lanes = atomic_load(&n_lanes);
}
