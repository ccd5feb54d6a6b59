//  zmq_poke - a hostile ZeroMQ peer for end-to-end tests: connects to an endpoint with a given
//  socket type and sends N bad messages (random bytes, multipart, valid headers with corrupt
//  bodies, truncated or huge MessagePack, frames over the size limit), or, with type "raw",
//  writes random bytes and a ZMTP greeting followed by garbage straight to the transport.
//    zmq_poke <endpoint> <dealer|req|router|xsub|sub|push|pair|raw> <count> [seed]
//  Prints "sent <n> messages" and exits 0 (2 on bad arguments, 1 if the socket cannot be made).
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_HUGE (5u << 20) //  over ES_MSG_MAX_SIZE (4 MiB): the receiver must refuse it

static uint64_t s_state = 88172645463325252ull;

static uint64_t
s_rand(void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

static void
s_fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)s_rand();
}

//  One bad message of the given variant into buf (up to cap bytes); its length.
static size_t
s_make(int variant, unsigned char *buf, size_t cap)
{
    static const uint8_t types[] = {1,  2,  3,  4,  5,  6,  10, 11, 12, 13, 14,
                                    15, 16, 17, 30, 31, 32, 33, 34, 99, 255};
    size_t n = 0;
    uint8_t type = types[s_rand() % sizeof types];
    switch (variant) {
    case 0: //  random bytes
        n = 1 + s_rand() % 512;
        s_fill(buf, n);
        break;
    case 1: //  valid header [1, type, id, ...] then garbage
        buf[n++] = 0x94;
        buf[n++] = 0x01;
        buf[n++] = type;
        buf[n++] = 0x07;
        {
            size_t k = s_rand() % 200;
            s_fill(buf + n, k);
            n += k;
        }
        break;
    case 2: //  valid header, a map whose fields have the wrong types
        buf[n++] = 0x94;
        buf[n++] = 0x01;
        buf[n++] = type;
        buf[n++] = 0x07;
        buf[n++] = 0x84; //  fixmap 4
        static const char *keys[] = {"service", "object", "level", "options", "session",
                                     "kind",    "pid",    "job",   "code",    "body"};
        for (int i = 0; i < 4; i++) {
            const char *k = keys[s_rand() % 10];
            buf[n++] = (unsigned char)(0xa0 | strlen(k));
            memcpy(buf + n, k, strlen(k));
            n += strlen(k);
            switch (s_rand() % 5) {
            case 0:
                buf[n++] = 0xc0;
                break; //  nil
            case 1:
                buf[n++] = 0x93;
                buf[n++] = 1;
                buf[n++] = 2;
                buf[n++] = 3;
                break;
            case 2:
                buf[n++] = 0xcb;
                s_fill(buf + n, 8);
                n += 8;
                break; //  float64
            case 3:
                buf[n++] = 0xd3;
                s_fill(buf + n, 8);
                n += 8;
                break; //  int64
            default:   //  a string of the wrong length claim
                buf[n++] = 0xda;
                buf[n++] = 0xff;
                buf[n++] = 0xff;
            }
        }
        break;
    case 3: //  lengths far beyond the frame
        buf[n++] = 0x94;
        buf[n++] = 0x01;
        buf[n++] = type;
        buf[n++] = 0x07;
        buf[n++] = (s_rand() & 1) ? 0xdf : 0xdd; //  map32 / array32
        buf[n++] = 0xff;
        buf[n++] = 0xff;
        buf[n++] = 0xff;
        buf[n++] = 0xff;
        break;
    case 4: //  deep nesting
        n = 4096 + s_rand() % (cap - 4096 < 60000 ? cap - 4096 : 60000);
        memset(buf, 0x91, n);
        break;
    case 5: //  wrong version, wrong shapes
        buf[n++] = 0x94;
        buf[n++] = (unsigned char)(2 + s_rand() % 100);
        buf[n++] = type;
        buf[n++] = 0x00;
        buf[n++] = 0x80;
        break;
    case 6: //  an unknown key with a huge nested value, then nothing
        buf[n++] = 0x94;
        buf[n++] = 0x01;
        buf[n++] = 12;
        buf[n++] = 0x01;
        buf[n++] = 0x81;
        buf[n++] = 0xa1;
        buf[n++] = 'z';
        {
            size_t k = 1000 + s_rand() % 3000;
            for (size_t i = 0; i < k && n < cap; i++)
                buf[n++] = 0x9f; //  fixarray 15, nested
        }
        break;
    default: //  empty
        n = 0;
    }
    return n;
}

static int
s_raw(const char *ep, long count)
{
    int fd = -1;
    unsigned char buf[4096];
    long sent = 0;
    for (long i = 0; i < count; i++) {
        if (fd < 0) {
            if (strncmp(ep, "ipc://", 6) == 0) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", ep + 6);
                fd = socket(AF_UNIX, SOCK_STREAM, 0);
                if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
                    close(fd);
                    fd = -1;
                }
            } else if (strncmp(ep, "tcp://", 6) == 0) {
                char host[64];
                int port = 0;
                if (sscanf(ep + 6, "%63[^:]:%d", host, &port) != 2)
                    return fprintf(stderr, "zmq_poke: bad endpoint %s\n", ep), 2;
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
                inet_pton(AF_INET, host, &sa.sin_addr);
                fd = socket(AF_INET, SOCK_STREAM, 0);
                if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
                    close(fd);
                    fd = -1;
                }
            }
            if (fd < 0) {
                fprintf(stderr, "zmq_poke: connect %s: %s\n", ep, strerror(errno));
                return 1;
            }
        }
        size_t n;
        if (i % 2) {
            //  A ZMTP 3.0 greeting (NULL mechanism) and then garbage frames.
            memset(buf, 0, 64);
            buf[0] = 0xff;
            buf[9] = 0x7f;
            buf[10] = 3;
            memcpy(buf + 12, "NULL", 4);
            n = 64 + s_rand() % 1024;
            s_fill(buf + 64, n - 64);
        } else {
            n = 1 + s_rand() % sizeof buf;
            s_fill(buf, n);
        }
        //  The peer hangs up on garbage: that is the point; reconnect for the next one.
        if (send(fd, buf, n, MSG_NOSIGNAL) < 0 || i % 4 == 3) {
            close(fd);
            fd = -1;
        }
        sent++;
    }
    if (fd >= 0)
        close(fd);
    printf("sent %ld messages\n", sent);
    return 0;
}

int
main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: zmq_poke <endpoint> <dealer|req|router|xsub|sub|push|pair|raw> "
                        "<count> [seed]\n");
        return 2;
    }
    const char *ep = argv[1], *kind = argv[2];
    long count = strtol(argv[3], NULL, 10);
    if (argc > 4)
        s_state ^= strtoull(argv[4], NULL, 10) * 0x9E3779B97F4A7C15ull;
    if (strcmp(kind, "raw") == 0)
        return s_raw(ep, count);
    static const struct {
        const char *name;
        int type;
    } types[] = {{"dealer", ZMQ_DEALER}, {"req", ZMQ_REQ}, {"router", ZMQ_ROUTER},
                 {"xsub", ZMQ_XSUB},     {"sub", ZMQ_SUB}, {"push", ZMQ_PUSH},
                 {"pair", ZMQ_PAIR},     {"pub", ZMQ_PUB}, {"xpub", ZMQ_XPUB}};
    int type = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(kind, types[i].name) == 0)
            type = types[i].type;
    if (type < 0 || count < 0) {
        fprintf(stderr, "zmq_poke: unknown socket type '%s' or bad count\n", kind);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, type) : NULL;
    int linger = 5000, hwm = 0, timeout = 2000;
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout) || zmq_connect(s, ep)) {
        fprintf(stderr, "zmq_poke: %s %s: %s\n", kind, ep, zmq_strerror(errno));
        return 1;
    }
    if (type == ZMQ_SUB)
        (void)zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0); //  all a SUB can send
    unsigned char *buf = malloc(S_HUGE);
    if (!buf)
        return 1;
    long sent = 0;
    for (long i = 0; i < count && type != ZMQ_SUB; i++) {
        int flags = 0;
        int parts = 1;
        if (type == ZMQ_ROUTER)
            parts = 2; //  the first frame routes; an unknown peer: dropped by our own socket
        else if (i % 7 == 3)
            parts = 2 + (int)(s_rand() % 4);
        for (int p = 0; p < parts; p++) {
            size_t n;
            if (i % 2500 == 1249 && p == parts - 1) {
                n = S_HUGE;
                s_fill(buf, n);
            } else {
                n = s_make((int)((i + p) % 8), buf, 65536);
            }
            flags = p < parts - 1 ? ZMQ_SNDMORE : 0;
            if (zmq_send(s, buf, n, flags) == -1) {
                if (type == ZMQ_REQ && errno == EFSM)
                    break;
                //  A socket type the peer refuses at the handshake never gets a connection:
                //  that refusal is the outcome, not a failure of this tool.
                fprintf(stderr, "zmq_poke: send %ld: %s\n", i, zmq_strerror(errno));
                count = i;
                break;
            }
        }
        if (type == ZMQ_REQ) {
            //  REQ must read an answer before the next request; the daemon may not send one.
            char tmp[256];
            int rt = 200;
            (void)zmq_setsockopt(s, ZMQ_RCVTIMEO, &rt, sizeof rt);
            if (zmq_recv(s, tmp, sizeof tmp, 0) == -1) {
                zmq_close(s);
                s = zmq_socket(ctx, type);
                if (!s || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) ||
                    zmq_connect(s, ep))
                    return 1;
            }
        }
        sent++;
    }
    if (type == ZMQ_SUB) {
        //  A SUB can only subscribe: many random subscriptions, then leave.
        for (long i = 0; i < count; i++) {
            size_t n = 1 + s_rand() % 256;
            s_fill(buf, n);
            (void)zmq_setsockopt(s, ZMQ_SUBSCRIBE, buf, n);
            sent++;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(buf);
    zmq_close(s);
    zmq_ctx_term(ctx);
    printf("sent %ld messages\n", sent);
    return 0;
}
