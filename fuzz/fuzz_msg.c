//  fuzz_msg - es_msg_decode() of any frame, every message type; where decode succeeds,
//  encode(decode(x)) must decode again to the same message and re-encode to the same bytes.
#include "common/es_buf.h"
#include "fuzz/fuzz_util.h"
#include "protocol/es_msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_msg_t m1, m2;
    es_err_t err;
    es_err_clear(&err);
    if (es_msg_decode(&m1, data, size, &err)) {
        fz_check_err("es_msg_decode", &err);
        if (err.code != ES_EPROTO)
            fz_fail("es_msg_decode: code %d, expected EPROTO: %s", (int)err.code, err.what);
        return 0;
    }
    es_buf_t b1, b2;
    es_buf_init(&b1);
    es_buf_init(&b2);
    if (es_msg_encode(&m1, &b1, &err))
        fz_fail("%s: encode of a decoded message failed: %s", es_msg_name(m1.type), err.what);
    //  The encoder writes each value in its shortest form and only known fields, so it never
    //  needs more bytes than the frame it came from.
    if (b1.len > size)
        fz_fail("%s: re-encoded %zu bytes from a %zu-byte frame", es_msg_name(m1.type), b1.len,
                size);
    if (es_msg_decode(&m2, b1.data, b1.len, &err))
        fz_fail("%s: decode of our own encoding failed: %s", es_msg_name(m1.type), err.what);
    if (m2.type != m1.type || m2.request_id != m1.request_id)
        fz_fail("%s: type or request_id changed in the round trip", es_msg_name(m1.type));
    if (es_msg_encode(&m2, &b2, &err))
        fz_fail("%s: second encode failed: %s", es_msg_name(m2.type), err.what);
    if (b2.len != b1.len || memcmp(b1.data, b2.data, b1.len) != 0)
        fz_fail("%s: encode(decode(encode(m))) differs from encode(m)", es_msg_name(m1.type));
    es_buf_release(&b1);
    es_buf_release(&b2);
    return 0;
}
