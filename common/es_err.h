//  es_err - error codes that travel in messages and logs, and the error record every call fills.
#ifndef ES_ERR_H
#define ES_ERR_H

//  Codes travel in messages and logs: append new ones, never renumber.
typedef enum {
    ES_OK = 0,
    ES_EINVAL = 1,   //  bad input from outside (arguments, options, records, config)
    ES_EPROTO = 2,   //  malformed message or server response
    ES_ESTORE = 3,   //  LMDB failure
    ES_EHTTP = 4,    //  transport or HTTP failure
    ES_ENOTFOUND = 5, //  unknown service, object or record
    ES_ECONFIG = 6,  //  bad configuration file
    ES_ESYS = 7,     //  operating system call failed
    ES_ETIMEOUT = 8, //  peer did not answer in time
    ES_EBUSY = 9,    //  entity already syncing
    ES_ECANCEL = 10, //  cancelled by request
    ES_ESERVER = 11, //  backend answered with an error opstatus
} es_code_t;

#define ES_ERR_WHAT_MAX 512

typedef struct {
    es_code_t code;              //  one of es_code_t
    char what[ES_ERR_WHAT_MAX]; //  human text naming the input and what was expected
} es_err_t;

//  Fills err (if not NULL) and returns -1, so you can write: return es_err_set(...);
int es_err_set(es_err_t *err, es_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

//  Prefix err->what with "prefix: " (keeps code). Returns -1.
int es_err_prefix(es_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

//  Clear err to ES_OK / "". Safe on NULL.
void es_err_clear(es_err_t *err);

//  Stable name of a code ("EINVAL").
const char *es_err_name(es_code_t code);

#endif
