//  es_lib - what the files of libedgesync share with each other and nobody else (not exported:
//  edgesync.map keeps these names local).
#ifndef ES_LIB_H
#define ES_LIB_H

//  Set the thread's last error (es_client_last_error / es_client_last_code); returns -1.
int es_lib_fail(int code, const char *what);
//  Clear the thread's last error after a success.
void es_lib_ok(void);

#endif
