//  orch_super - actor processes: spawn, watch, restart.
#include "actors/orchestrator/orch_super.h"
#include "common/es_actor.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ACTORS_MAX 32

struct orch_super {
    orch_super_opts_t opts;       //  copied; strings borrowed
    void *work;                   //  ROUTER the actors connect to
    orch_super_down_fn *on_down;  //  job re-queue callback
    void *ctx;                    //  for on_down
    actor_t actors[ACTORS_MAX];   //  declared actors
    size_t nactors;               //  used entries
    int64_t last_tick_ms;         //  previous orch_super_tick
    //  The watchdog thread: an actor SIGSTOPped inside an LMDB write transaction keeps the
    //  writer lock, and the loop blocks on its next write, so it can no longer see the silence
    //  and kill the actor. The thread kills stopped actors while the loop is stalled.
    pthread_t wd_thread;          //  the thread
    bool wd_running;              //  it was started
    pthread_mutex_t wd_lock;      //  guards wd_pids and wd_quit
    pthread_cond_t wd_cond;       //  wakes it to quit
    pid_t wd_pids[ACTORS_MAX];    //  actor pids as the loop last published them
    bool wd_quit;                 //  destroy asks it to end
    _Atomic int64_t wd_tick_ms;   //  when the loop last ran orch_super_tick
};

//  Our child pid is in state 'T' (stopped by a signal; 't', a debugger's stop, is left alone).
static bool
s_stopped_child(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    //  "pid (comm) state ppid ...": comm may hold spaces and parentheses, so from the last ')'.
    char *p = strrchr(buf, ')');
    char state;
    int ppid;
    if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
        return false;
    //  The parent check guards against a reaped pid reused by a stranger.
    return state == 'T' && ppid == (int)getpid();
}

static void *
s_watchdog(void *arg)
{
    orch_super_t *self = arg;
    int period = self->opts.heartbeat_timeout_ms / 4 > 0 ? self->opts.heartbeat_timeout_ms / 4 : 1;
    pthread_mutex_lock(&self->wd_lock);
    while (!self->wd_quit) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += period / 1000;
        ts.tv_nsec += (long)(period % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&self->wd_cond, &self->wd_lock, &ts); //  timeout or quit
        if (self->wd_quit)
            break;
        int64_t stalled = es_now_ms() - atomic_load(&self->wd_tick_ms);
        if (stalled <= self->opts.heartbeat_timeout_ms)
            continue; //  the loop is running: it judges silence itself
        for (size_t i = 0; i < ACTORS_MAX; i++)
            if (self->wd_pids[i] > 0 && s_stopped_child(self->wd_pids[i])) {
                es_log_warn("loop stalled for %lld ms and actor pid %d is stopped: SIGKILL "
                            "(it may hold the store's writer lock)",
                            (long long)stalled, (int)self->wd_pids[i]);
                kill(self->wd_pids[i], SIGKILL);
            }
    }
    pthread_mutex_unlock(&self->wd_lock);
    return NULL;
}

static void
s_wd_publish(orch_super_t *self)
{
    atomic_store(&self->wd_tick_ms, es_now_ms());
    if (!self->wd_running)
        return;
    pthread_mutex_lock(&self->wd_lock);
    for (size_t i = 0; i < ACTORS_MAX; i++)
        self->wd_pids[i] = i < self->nactors ? self->actors[i].pid : 0;
    pthread_mutex_unlock(&self->wd_lock);
}

orch_super_t *
orch_super_new(const orch_super_opts_t *opts, void *work_sock, orch_super_down_fn *on_down,
               void *ctx)
{
    orch_super_t *self = es_calloc(1, sizeof *self);
    self->opts = *opts;
    self->work = work_sock;
    self->on_down = on_down;
    self->ctx = ctx;
    atomic_init(&self->wd_tick_ms, es_now_ms());
    pthread_mutex_init(&self->wd_lock, NULL);
    pthread_cond_init(&self->wd_cond, NULL);
    int rc = pthread_create(&self->wd_thread, NULL, s_watchdog, self);
    if (rc)
        es_log_warn("watchdog thread: %s; a stopped actor holding the store's writer lock "
                    "will block the daemon until it is continued",
                    strerror(rc));
    self->wd_running = rc == 0;
    return self;
}

void
orch_super_destroy(orch_super_t **self_p)
{
    if (!*self_p)
        return;
    orch_super_t *self = *self_p;
    if (self->wd_running) {
        pthread_mutex_lock(&self->wd_lock);
        self->wd_quit = true;
        pthread_cond_signal(&self->wd_cond);
        pthread_mutex_unlock(&self->wd_lock);
        pthread_join(self->wd_thread, NULL);
    }
    pthread_cond_destroy(&self->wd_cond);
    pthread_mutex_destroy(&self->wd_lock);
    free(self);
    *self_p = NULL;
}

void
orch_super_add(orch_super_t *self, const char *kind, uint32_t worker)
{
    assert(self->nactors < ACTORS_MAX);
    actor_t *a = &self->actors[self->nactors++];
    memset(a, 0, sizeof *a);
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    a->worker = worker;
    snprintf(a->route, sizeof a->route, "%s.%u", kind, worker);
    snprintf(a->exe, sizeof a->exe, "%s/es-%s", self->opts.bin_dir, kind);
}

static void
s_spawn(orch_super_t *self, actor_t *a)
{
    char worker[16];
    snprintf(worker, sizeof worker, "%u", a->worker);
    const char *argv[12];
    int n = 0;
    argv[n++] = a->exe;
    argv[n++] = "--endpoint";
    argv[n++] = self->opts.endpoint;
    argv[n++] = "--data-dir";
    argv[n++] = self->opts.data_dir;
    argv[n++] = "--worker";
    argv[n++] = worker;
    if (self->opts.config) {
        argv[n++] = "--config";
        argv[n++] = self->opts.config;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == -1) {
        es_log_error("fork %s: %s", a->route, strerror(errno));
        a->restart_at_ms = es_now_ms() + 1000;
        return;
    }
    if (pid == 0) {
        //  A blocked mask survives exec: reset it so the actor sets up its own signalfd.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(a->exe, (char *const *)argv);
        fprintf(stderr, "E edgesyncd: exec %s: %s\n", a->exe, strerror(errno));
        _exit(127);
    }
    a->pid = pid;
    a->state = ACTOR_STARTING;
    a->started_ms = a->last_seen_ms = es_now_ms();
    a->job = 0;
    a->busy = false;
    es_log_info("started %s (pid %d)", a->route, (int)pid);
}

actor_t *
orch_super_find(orch_super_t *self, const char *route, size_t route_len)
{
    for (size_t i = 0; i < self->nactors; i++) {
        actor_t *a = &self->actors[i];
        if (strlen(a->route) == route_len && memcmp(a->route, route, route_len) == 0)
            return a;
    }
    return NULL;
}

actor_t *
orch_super_by_job(orch_super_t *self, uint64_t job)
{
    for (size_t i = 0; i < self->nactors; i++)
        if (job && self->actors[i].job == job)
            return &self->actors[i];
    return NULL;
}

actor_t *
orch_super_seen(orch_super_t *self, const char *route, size_t route_len, const es_msg_t *msg)
{
    actor_t *a = orch_super_find(self, route, route_len);
    if (!a || a->pid == 0)
        return NULL; //  a stale process of an earlier generation, or a stranger
    a->last_seen_ms = es_now_ms();
    if (msg->type == ES_MSG_HELLO) {
        if (msg->u.hello.pid != (uint32_t)a->pid) {
            //  An old incarnation still talking: ignore it.
            es_log_warn("%s: HELLO from pid %u, expected %d", a->route, msg->u.hello.pid,
                        (int)a->pid);
            return NULL;
        }
        if (a->state == ACTOR_STARTING) {
            a->state = ACTOR_READY;
            es_log_info("%s ready (pid %d)", a->route, (int)a->pid);
        }
    } else if (msg->type == ES_MSG_HEARTBEAT) {
        a->busy = msg->u.heartbeat.busy;
    }
    return a->state == ACTOR_READY || a->state == ACTOR_STOPPING ? a : NULL;
}

static void
s_down(orch_super_t *self, actor_t *a, const char *why)
{
    uint64_t job = a->job;
    es_log_warn("%s (pid %d) down: %s%s", a->route, (int)a->pid, why,
                job ? "; its job is re-queued" : "");
    a->pid = 0;
    a->state = ACTOR_DOWN;
    a->job = 0;
    a->restarts++;
    //  Back off a little so a crash loop does not spin.
    int64_t delay = a->restarts > 5 ? 2000 : 100 * (int64_t)a->restarts;
    a->restart_at_ms = es_now_ms() + delay;
    if (self->on_down)
        self->on_down(self->ctx, a, job);
}

static void
s_reap(orch_super_t *self)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        actor_t *a = NULL;
        for (size_t i = 0; i < self->nactors; i++)
            if (self->actors[i].pid == pid)
                a = &self->actors[i];
        char why[64];
        if (WIFEXITED(st))
            snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(st));
        else
            snprintf(why, sizeof why, "ended (status 0x%x)", st);
        if (a)
            s_down(self, a, why);
        else
            es_log_info("reaped pid %d: %s", (int)pid, why);
    }
}

void
orch_super_tick(orch_super_t *self)
{
    s_reap(self);
    int64_t now = es_now_ms();
    //  If this loop itself was stalled (a slow disk, the LMDB writer lock), heartbeats may be
    //  waiting unread: silence cannot be judged for that long, so restart the clocks.
    if (self->last_tick_ms && now - self->last_tick_ms > self->opts.heartbeat_timeout_ms / 2) {
        es_log_warn("orchestrator loop stalled for %lld ms", (long long)(now - self->last_tick_ms));
        for (size_t i = 0; i < self->nactors; i++) {
            self->actors[i].last_seen_ms = now;
            if (self->actors[i].state == ACTOR_STARTING)
                self->actors[i].started_ms = now;
        }
    }
    self->last_tick_ms = now;
    for (size_t i = 0; i < self->nactors; i++) {
        actor_t *a = &self->actors[i];
        if (a->state == ACTOR_DOWN) {
            if (now >= a->restart_at_ms)
                s_spawn(self, a);
        } else if (a->state == ACTOR_STARTING &&
                   now - a->started_ms > self->opts.hello_timeout_ms) {
            es_log_warn("%s (pid %d): no HELLO within %d ms, killing", a->route, (int)a->pid,
                        self->opts.hello_timeout_ms);
            kill(a->pid, SIGKILL);
            a->state = ACTOR_STOPPING;
            a->stop_deadline_ms = now;
        } else if (a->state == ACTOR_READY &&
                   now - a->last_seen_ms > self->opts.heartbeat_timeout_ms) {
            es_log_warn("%s (pid %d): silent for %lld ms, killing", a->route, (int)a->pid,
                        (long long)(now - a->last_seen_ms));
            //  SIGKILL also ends a SIGSTOPped process; the reap restarts it.
            kill(a->pid, SIGKILL);
            a->state = ACTOR_STOPPING;
            a->stop_deadline_ms = now;
        }
    }
    s_wd_publish(self);
}

actor_t *
orch_super_idle(orch_super_t *self, const char *kind)
{
    for (size_t i = 0; i < self->nactors; i++) {
        actor_t *a = &self->actors[i];
        if (a->state == ACTOR_READY && a->job == 0 && strcmp(a->kind, kind) == 0)
            return a;
    }
    return NULL;
}

bool
orch_super_all_ready(const orch_super_t *self)
{
    for (size_t i = 0; i < self->nactors; i++)
        if (self->actors[i].state != ACTOR_READY)
            return false;
    return true;
}

size_t
orch_super_count_ready(const orch_super_t *self, size_t *total)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nactors; i++)
        n += self->actors[i].state == ACTOR_READY;
    *total = self->nactors;
    return n;
}

void
orch_super_stop_all(orch_super_t *self)
{
    es_msg_t stop;
    es_msg_init(&stop, ES_MSG_STOP, 0);
    for (size_t i = 0; i < self->nactors; i++) {
        actor_t *a = &self->actors[i];
        if (a->pid == 0)
            continue;
        es_err_t err;
        if (es_msg_send(self->work, a->route, strlen(a->route), &stop, &err))
            kill(a->pid, SIGTERM); //  the socket is gone: fall back to the signal
        a->state = ACTOR_STOPPING;
    }
    int64_t deadline = es_now_ms() + self->opts.grace_ms;
    for (;;) {
        int alive = 0;
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
            for (size_t i = 0; i < self->nactors; i++)
                if (self->actors[i].pid == pid)
                    self->actors[i].pid = 0;
        for (size_t i = 0; i < self->nactors; i++)
            alive += self->actors[i].pid != 0;
        if (!alive)
            break;
        if (es_now_ms() >= deadline) {
            for (size_t i = 0; i < self->nactors; i++)
                if (self->actors[i].pid) {
                    es_log_warn("%s did not stop within %d ms: SIGKILL", self->actors[i].route,
                                self->opts.grace_ms);
                    kill(self->actors[i].pid, SIGKILL);
                    waitpid(self->actors[i].pid, &st, 0);
                    self->actors[i].pid = 0;
                }
            break;
        }
        usleep(10000); //  shutdown only: the loop is over
    }
    for (size_t i = 0; i < self->nactors; i++)
        self->actors[i].state = ACTOR_DOWN;
}

void
orch_super_json(const orch_super_t *self, es_buf_t *out)
{
    static const char *states[] = {"down", "starting", "ready", "stopping"};
    es_buf_putc(out, '[');
    for (size_t i = 0; i < self->nactors; i++) {
        const actor_t *a = &self->actors[i];
        es_buf_printf(out,
                      "%s{\"actor\":\"%s\",\"pid\":%d,\"state\":\"%s\",\"restarts\":%u,"
                      "\"job\":%llu}",
                      i ? "," : "", a->route, (int)a->pid, states[a->state], a->restarts,
                      (unsigned long long)a->job);
    }
    es_buf_putc(out, ']');
}

int
orch_super_next_ms(const orch_super_t *self, int cap)
{
    int64_t now = es_now_ms(), best = cap;
    for (size_t i = 0; i < self->nactors; i++) {
        const actor_t *a = &self->actors[i];
        if (a->state == ACTOR_DOWN && a->restart_at_ms - now < best)
            best = a->restart_at_ms - now;
    }
    return best < 0 ? 0 : (int)best;
}
