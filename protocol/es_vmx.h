//  es_vmx - Volt MX Offline Objects error codes (SPEC 4.5): their generic messages and the
//  "<generic message>: <details>" form of native SDK failures.
#ifndef ES_VMX_H
#define ES_VMX_H

//  Generic message of a code, or NULL if the code is not one of ours.
const char *es_vmx_message(int code);
//  "<generic>: <details>" (caller frees). Details already starting with the generic message,
//  or an unknown code, are returned as they are; empty details give the generic message alone.
char *es_vmx_format(int code, const char *details);

#endif
