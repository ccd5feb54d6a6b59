//  fuzz_syncopts - syncOptions text at each level: object, object service, application. What
//  parses must survive es_syncopts_to_json() and parse back to the same options (its contract).
#include "common/es_buf.h"
#include "fuzz/fuzz_util.h"
#include "protocol/es_syncopts.h"

static const char *const s_objects[] = {"Customer", "Order", "Line"};
static const char *const s_services[] = {"Svc", "Other"};

static void
s_check_failure(const char *call, const es_syncopts_t *o, const es_err_t *err, int vmx)
{
    fz_check_err(call, err);
    if (vmx < 2000 || vmx > 2999)
        fz_fail("%s: Volt MX code %d out of 2000..2999: %s", call, vmx, err->what);
    static const es_syncopts_t zero;
    if (memcmp(o, &zero, sizeof zero) != 0)
        fz_fail("%s: failed but left options set: %s", call, err->what);
}

static void
s_level(const uint8_t *data, size_t size, es_syncopts_level_t level)
{
    size_t nobjects = level == ES_SYNCOPTS_OBJECT ? 1 : 3;
    const char *call = level == ES_SYNCOPTS_OBJECT ? "object level" : "service level";
    es_syncopts_t o, back;
    es_err_t err;
    es_err_clear(&err);
    int vmx = 0;
    if (es_syncopts_parse(&o, (const char *)data, size, level, s_objects, nobjects, &err, &vmx)) {
        s_check_failure(call, &o, &err, vmx);
        return;
    }
    es_buf_t j1, j2;
    es_buf_init(&j1);
    es_buf_init(&j2);
    es_syncopts_to_json(&o, &j1);
    if (es_syncopts_parse(&back, j1.data, j1.len, level, s_objects, nobjects, &err, &vmx))
        fz_fail("%s: normalised options do not parse back: %s\n%s", call, err.what, j1.data);
    es_syncopts_to_json(&back, &j2);
    if (j1.len != j2.len || memcmp(j1.data, j2.data, j1.len) != 0)
        fz_fail("%s: round trip changed the options:\n%s\n%s", call, j1.data, j2.data);
    if (back.nwarnings)
        fz_fail("%s: normalised options parse with warnings: %s\n%s", call, back.warnings[0],
                j1.data);
    es_syncopts_release(&back);
    es_syncopts_release(&o);
    es_syncopts_release(&o); //  safe twice, by contract
    es_buf_release(&j1);
    es_buf_release(&j2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_level(data, size, ES_SYNCOPTS_OBJECT);
    s_level(data, size, ES_SYNCOPTS_SERVICE);

    es_syncopts_app_t a;
    es_err_t err;
    es_err_clear(&err);
    int vmx = 0;
    if (es_syncopts_app_parse(&a, (const char *)data, size, s_services, 2, &err, &vmx)) {
        fz_check_err("app level", &err);
        if (vmx < 2000 || vmx > 2999)
            fz_fail("app level: Volt MX code %d out of range: %s", vmx, err.what);
        return 0;
    }
    //  Each service's text goes on to the service level, as the orchestrator does.
    for (size_t i = 0; i < a.nservices; i++) {
        const char *t = a.services[i].value;
        s_level((const uint8_t *)t, strlen(t), ES_SYNCOPTS_SERVICE);
    }
    es_syncopts_app_release(&a);
    es_syncopts_app_release(&a);
    return 0;
}
