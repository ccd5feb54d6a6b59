//  es_curve - ZeroMQ CURVE keys of the network (tcp://) command and event sockets: the key files
//  `edgesync keygen` writes, and the daemon's allow-list of client public keys.
//  Files: '#' starts a comment, blank lines are skipped. A key file holds one Z85 key (40
//  characters): PREFIX.key the secret (mode 0600), PREFIX.pub the public key. An allow-list
//  holds one Z85 public key per line, optionally followed by a '#' comment.
#ifndef ES_CURVE_H
#define ES_CURVE_H
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_CURVE_Z85_LEN 40 //  a 32-byte key in Z85
#define ES_CURVE_KEY_LEN 32 //  a key in binary

//  True when libzmq was built with CURVE support (libsodium).
bool es_curve_available(void);
//  Create a key pair: write PREFIX.key (the secret, mode 0600) and PREFIX.pub, never replacing
//  an existing file. public_z85 (41 bytes) gets the public key. -1 with err naming the file.
int es_curve_keygen(const char *prefix, char *public_z85, es_err_t *err);
//  Read a public key file into out (41 bytes, NUL-terminated Z85). -1 with err "file:line: ...".
int es_curve_load_public(const char *path, char *out, es_err_t *err);
//  Read a secret key file into secret_z85 and its public key into public_z85 (41 bytes each).
//  Refused (-1, err naming the mode) when group or others may read or write it.
int es_curve_load_secret(const char *path, char *public_z85, char *secret_z85, es_err_t *err);

typedef struct es_curve_allow es_curve_allow_t;
//  Read an allow-list file. NULL with err "file:line: ..." on the first bad line.
es_curve_allow_t *es_curve_allow_new(const char *path, es_err_t *err);
void es_curve_allow_destroy(es_curve_allow_t **self_p);
//  Distinct keys in the list.
size_t es_curve_allow_size(const es_curve_allow_t *self);
//  Is this binary public key (32 bytes) in the list?
bool es_curve_allow_has(const es_curve_allow_t *self, const uint8_t *key);

#endif
