//  fuzz_meta - es_meta_new() of any metadata document; what it accepts must be consistent
//  (every key column indexes a field, lookups by name find each object and field).
#include "fuzz/fuzz_util.h"
#include "protocol/es_meta.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_err_t err;
    es_err_clear(&err);
    es_meta_t *meta = es_meta_new((const char *)data, size, &err);
    if (!meta) {
        fz_check_err("es_meta_new", &err);
        return 0;
    }
    for (size_t i = 0; i < meta->nobjects; i++) {
        const es_meta_object_t *o = &meta->objects[i];
        if (es_meta_object(meta, o->name) != o)
            fz_fail("object '%s' not found by name", o->name);
        if (o->nkey == 0)
            fz_fail("object '%s' accepted without a key", o->name);
        for (size_t k = 0; k < o->nkey; k++)
            if (o->key[k] >= o->nfields)
                fz_fail("object '%s': key %zu out of range", o->name, k);
        for (size_t f = 0; f < o->nfields; f++) {
            const char *n = o->fields[f].name;
            if (es_meta_field_index(o, n, strlen(n)) != (int)f)
                fz_fail("object '%s': field '%s' not found by name", o->name, n);
            (void)es_meta_ftype_name(o->fields[f].type);
        }
    }
    es_meta_destroy(&meta);
    if (meta)
        fz_fail("es_meta_destroy left the pointer set");
    return 0;
}
