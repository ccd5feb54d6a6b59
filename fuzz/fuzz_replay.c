//  fuzz_replay - the main() of the replay tests in the normal build: runs every file of the
//  target's seed corpus and regression folder (or the files and folders given as arguments)
//  through LLVMFuzzerTestOneInput(), so past crashers stay fixed under gcc, ASan and valgrind.
#include "fuzz/fuzz_util.h"
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

//  Each input in a buffer of exactly its size, so ASan or valgrind catch a read past the end.
static int
s_run_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t n;
    while (data && (n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            uint8_t *grown = realloc(data, cap);
            if (!grown)
                free(data);
            data = grown;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!data || bad) {
        fprintf(stderr, "%s: read failed\n", path);
        free(data);
        return -1;
    }
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact)
        abort();
    memcpy(exact, data, len);
    free(data);
    (void)LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*count)++;
    return 0;
}

static int
s_by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

//  A folder that does not exist holds nothing (a target may have no regressions yet).
static int
s_run_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st))
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return s_run_file(path, count);
    struct dirent **names;
    int n = scandir(path, &names, NULL, s_by_name);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && names[i]->d_name[0] != '.') {
            char file[4096];
            snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
            rc = s_run_file(file, count);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int
main(int argc, char *argv[])
{
    const char *defaults[] = {FUZZ_DIR "/corpus/" FUZZ_NAME, FUZZ_DIR "/regress/" FUZZ_NAME};
    size_t count = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (s_run_path(argv[i], &count))
                return 1;
    } else {
        for (size_t i = 0; i < 2; i++)
            if (s_run_path(defaults[i], &count))
                return 1;
    }
    //  No input at all means a broken path, not a pass.
    if (count == 0) {
        fprintf(stderr, "fuzz_replay %s: no inputs found\n", FUZZ_NAME);
        return 1;
    }
    printf("fuzz_replay %s: %zu inputs ran clean\n", FUZZ_NAME, count);
    return 0;
}
