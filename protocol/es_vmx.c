//  es_vmx - Volt MX error messages.
#include "protocol/es_vmx.h"
#include "common/es_mem.h"
#include <string.h>

static const struct {
    int code;
    const char *message;
} s_codes[] = {
    {2000, "DB generic error"},
    {2030, "An error occurred in the network layer"},
    {2031, "Network call failed due to connection timeout"},
    {2032, "Network call failed due to socket connection timeout"},
    {2033, "Network call failed due to security error"},
    {2034, "Network call failed as it could not connect to the server"},
    {2035, "Network call failed as the host could not be found"},
    {2036, "Network call failed as there is no network connectivity"},
    {2037, "Network response is either null or invalid JSON"},
    {2038, "Server responded with error opstatus"},
    {2039, "The url used is invalid"},
    {2044, "The upload request is already in progress"},
    {2304, "Invalid options provided"},
    {2400, "Object name is null, empty or invalid"},
    {2401, "Object service name is null, empty or invalid"},
    {2460, "An error has occurred in the sync layer"},
    {2461, "Sync is currently in progress for this object or object service"},
    {2472, "Filters applied to the current sync operation are invalid"},
    {2473, "Sync upload failed with an error"},
    {2474, "Sync download failed with an error"},
    {2476, "Pending sync requests failed with an error"},
    {2477, "Invalid value found for syncType option"},
    {2478, "Syncing operation has been cancelled"},
    {2479, "Sync cancellation failed"},
    {2482, "Application sync options provided are invalid."},
    {2483, "Setup is not performed. There are no object services to sync."},
};

const char *
es_vmx_message(int code)
{
    for (size_t i = 0; i < sizeof s_codes / sizeof s_codes[0]; i++)
        if (s_codes[i].code == code)
            return s_codes[i].message;
    return NULL;
}

char *
es_vmx_format(int code, const char *details)
{
    const char *generic = es_vmx_message(code);
    if (!details)
        details = "";
    if (!generic || strncmp(details, generic, strlen(generic)) == 0)
        return es_strdup(*details ? details : generic ? generic : "sync failed");
    if (!*details)
        return es_strdup(generic);
    return es_sprintf("%s: %s", generic, details);
}
