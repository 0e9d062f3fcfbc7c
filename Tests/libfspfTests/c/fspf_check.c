/*
 * libfspf from C, as a program linked against include/fspf.h and libfspf.so sees it.
 *
 *   fspf_check [--attributes] VOLUME KEY_HEX_FILE TAG PLAIN_DIR [TAMPERED_VOLUME]
 *
 * Walks the volume with fspf_list and compares every entry with PLAIN_DIR (names, types,
 * sizes, symlink targets, every byte through fspf_pread in pieces of random sizes; with
 * --attributes also modes and modification times); reads from 8 threads at once through one
 * file handle; checks every documented error code; with TAMPERED_VOLUME (the same volume with
 * altered bytes) expects FSPF_E_INTEGRITY and a zeroed buffer, never altered data.
 * Prints "ok: N checks" and exits 0, or names the first failed check and exits 1.
 */
#include "fspf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int checks;
static int attributes;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* Status `s` must be `want`; on a mismatch show the error message. */
#define EXPECT(s, want, err) CHECK((s) == (want), "got %d (%s), want %d: %s", (int)(s), fspf_strerror(s), (int)(want), (err).message)

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;
static unsigned long long rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned char *slurp(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return NULL;
    unsigned char *data = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    *size = got;
    return data;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the whole file at volume path `vpath` in random pieces and compares it with `plain`. */
static void compare_file(fspf_volume *v, const char *vpath, const unsigned char *plain, size_t size) {
    fspf_error err;
    fspf_file *f = NULL;
    EXPECT(fspf_open(v, vpath, &f, &err), FSPF_OK, err);
    CHECK(fspf_file_size(f) == size, "%s: size %llu, plain %zu", vpath, (unsigned long long)fspf_file_size(f), size);
    unsigned char *buf = malloc(size + 300000);
    /* Sequential in random-size pieces (1 byte to 300 KB: inside a chunk, across many). */
    size_t at = 0;
    while (at < size) {
        size_t want = 1 + rnd() % 300000, got = 0;
        EXPECT(fspf_pread(f, buf, want, at, &got, &err), FSPF_OK, err);
        size_t expect = want < size - at ? want : size - at;
        CHECK(got == expect, "%s: read %zu at %zu gave %zu", vpath, want, at, got);
        CHECK(memcmp(buf, plain + at, got) == 0, "%s: bytes differ at %zu", vpath, at);
        at += got;
    }
    /* Random positions, and at and past the end. */
    for (int i = 0; i < 20 && size > 0; i++) {
        size_t off = rnd() % size, want = 1 + rnd() % 70000, got = 0;
        EXPECT(fspf_pread(f, buf, want, off, &got, &err), FSPF_OK, err);
        CHECK(got == (want < size - off ? want : size - off) && memcmp(buf, plain + off, got) == 0, "%s: random read at %zu", vpath, off);
    }
    size_t got = 7;
    EXPECT(fspf_pread(f, buf, 10, size, &got, &err), FSPF_OK, err);
    CHECK(got == 0, "read at the end gave %zu", got);
    EXPECT(fspf_pread(f, buf, 10, size + 12345, &got, &err), FSPF_OK, err);
    CHECK(got == 0, "read past the end gave %zu", got);
    EXPECT(fspf_pread(f, buf, 10, UINT64_MAX, &got, &err), FSPF_OK, err);  /* beyond off_t */
    CHECK(got == 0, "read at UINT64_MAX gave %zu", got);
    EXPECT(fspf_pread(f, buf, 0, 0, &got, &err), FSPF_OK, err);
    EXPECT(fspf_pread(f, NULL, 10, 0, &got, &err), FSPF_E_USAGE, err);
    free(buf);
    fspf_close(f);
}

/* Compares volume directory `vdir` with plain directory `pdir`, recursively. */
static void compare_tree(fspf_volume *v, const char *vdir, const char *pdir, const char **largest, size_t *largest_size) {
    fspf_error err;
    fspf_dir *d = NULL;
    EXPECT(fspf_list(v, vdir, &d, &err), FSPF_OK, err);
    struct dirent **names;
    int n = scandir(pdir, &names, NULL, alphasort);
    CHECK(n >= 0, "scandir %s: %s", pdir, strerror(errno));
    size_t plain_count = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") == 0 || strcmp(names[i]->d_name, "..") == 0 || strcmp(names[i]->d_name, ".fspf-objects") == 0 ||
            strcmp(names[i]->d_name, "volume.fspf") == 0)
            continue;
        plain_count++;
    }
    CHECK(fspf_dir_count(d) == plain_count, "%s: %zu entries, plain has %zu", vdir, fspf_dir_count(d), plain_count);
    CHECK(fspf_dir_name(d, fspf_dir_count(d)) == NULL, "name past the end");
    for (size_t i = 0; i < fspf_dir_count(d); i++) {
        const char *name = fspf_dir_name(d, i);
        if (i > 0) CHECK(strcmp(fspf_dir_name(d, i - 1), name) < 0, "%s: not in name order", vdir);
        char vpath[4096], ppath[4096];
        snprintf(vpath, sizeof vpath, "%s/%s", vdir, name);
        snprintf(ppath, sizeof ppath, "%s/%s", pdir, name);
        fspf_stat s, s2;
        EXPECT(fspf_dir_stat(d, i, &s, &err), FSPF_OK, err);
        EXPECT(fspf_stat_path(v, vpath, &s2, &err), FSPF_OK, err);
        CHECK(memcmp(&s, &s2, sizeof s) == 0, "%s: listing and stat disagree", vpath);
        struct stat p;
        CHECK(lstat(ppath, &p) == 0, "%s: not in the plain tree", ppath);
        if (attributes) {
            CHECK(s.mode == (p.st_mode & 07777), "%s: mode %o, plain %o", vpath, s.mode, p.st_mode & 07777);
            CHECK(s.mtime_sec == p.st_mtim.tv_sec && s.mtime_nsec == p.st_mtim.tv_nsec, "%s: mtime", vpath);
        }
        if (S_ISDIR(p.st_mode)) {
            CHECK(s.type == FSPF_TYPE_DIRECTORY && s.region == FSPF_REGION_NONE, "%s: type %u", vpath, s.type);
            compare_tree(v, vpath, ppath, largest, largest_size);
        } else if (S_ISLNK(p.st_mode)) {
            CHECK(s.type == FSPF_TYPE_SYMLINK, "%s: type %u", vpath, s.type);
            char target[4096], small[1];
            ssize_t tn = readlink(ppath, target, sizeof target);
            size_t len = 0;
            EXPECT(fspf_readlink(v, vpath, small, sizeof small, &len, &err), FSPF_E_USAGE, err);
            CHECK(len == (size_t)tn, "%s: needed length %zu", vpath, len);
            EXPECT(fspf_readlink(v, vpath, target + 2048, 2048, &len, &err), FSPF_OK, err);
            CHECK(len == (size_t)tn && memcmp(target, target + 2048, len) == 0 && target[2048 + len] == 0, "%s: target", vpath);
            fspf_file *f = (fspf_file *)1;
            EXPECT(fspf_open(v, vpath, &f, &err), FSPF_E_NOT_A_FILE, err);
            CHECK(f == NULL, "a failed open leaves NULL");
        } else {
            CHECK(s.type == FSPF_TYPE_FILE && s.size == (uint64_t)p.st_size, "%s: type %u size %llu", vpath, s.type, (unsigned long long)s.size);
            CHECK(s.region >= FSPF_REGION_ENCRYPTED && s.region <= FSPF_REGION_NOT_PROTECTED, "%s: region %u", vpath, s.region);
            size_t size;
            unsigned char *plain = slurp(ppath, &size);
            CHECK(plain != NULL, "%s: unreadable", ppath);
            compare_file(v, vpath, plain, size);
            free(plain);
            if (s.region == FSPF_REGION_ENCRYPTED && s.size > *largest_size) {
                free((void *)*largest);
                *largest = strdup(vpath);
                *largest_size = s.size;
            }
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    fspf_dir_close(d);
}

struct reader_args {
    fspf_file *file;
    const unsigned char *plain;
    size_t size;
    unsigned seed;
    int failures;
};

static void *reader(void *p) {
    struct reader_args *a = p;
    unsigned char *buf = malloc(1 << 20);
    for (int i = 0; i < 200; i++) {
        a->seed = a->seed * 1103515245u + 12345u;
        size_t off = a->seed % a->size, want = 1 + (a->seed >> 8) % (1 << 20), got = 0;
        fspf_error err;
        if (fspf_pread(a->file, buf, want, off, &got, &err) != FSPF_OK || got != (want < a->size - off ? want : a->size - off) ||
            memcmp(buf, a->plain + off, got) != 0)
            a->failures++;
    }
    free(buf);
    return NULL;
}

static void errors(const char *volume, const uint8_t *key, const char *tag, const char *keyfile) {
    fspf_error err;
    fspf_volume *v = (fspf_volume *)1;
    uint8_t wrong[32];
    memcpy(wrong, key, 32);
    wrong[31] ^= 1;
    char badtag[65];
    snprintf(badtag, sizeof badtag, "%s", tag);
    badtag[0] = badtag[0] == '0' ? '1' : '0';

    EXPECT(fspf_volume_open(volume, key, 31, tag, 0, &v, &err), FSPF_E_USAGE, err);
    CHECK(v == NULL, "a failed open leaves NULL");
    EXPECT(fspf_volume_open(NULL, key, 32, tag, 0, &v, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_volume_open(volume, NULL, 32, tag, 0, &v, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_volume_open(volume, key, 32, tag, 0, NULL, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_volume_open(volume, key, 32, NULL, 0, &v, &err), FSPF_E_USAGE, err);
    CHECK(strstr(err.message, "expected tag") != NULL, "message: %s", err.message);
    EXPECT(fspf_volume_open(volume, key, 32, "xyz", 0, &v, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_volume_open(volume, key, 32, tag, 0x80, &v, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_volume_open("/nonexistent/volume", key, 32, tag, 0, &v, &err), FSPF_E_NOT_FOUND, err);
    CHECK(strstr(err.message, "/nonexistent/volume") != NULL, "message names the path: %s", err.message);
    EXPECT(fspf_volume_open("/etc/passwd", key, 32, tag, 0, &v, &err), FSPF_E_NOT_A_VOLUME, err);
    EXPECT(fspf_volume_open(volume, wrong, 32, tag, 0, &v, &err), FSPF_E_WRONG_KEY, err);
    EXPECT(fspf_volume_open(volume, key, 32, badtag, 0, &v, &err), FSPF_E_INTEGRITY, err);
    CHECK(strstr(err.message, "not the expected") != NULL, "message: %s", err.message);
    /* Without an error record, the status alone. */
    CHECK(fspf_volume_open(volume, wrong, 32, tag, 0, &v, NULL) == FSPF_E_WRONG_KEY, "status without a record");

    /* Options: the library reads the key itself. */
    char kf[4200], tg[200];
    snprintf(kf, sizeof kf, "key-file=%s", keyfile);
    snprintf(tg, sizeof tg, "tag=%s", tag);
    const char *ok[] = {kf, tg, NULL};
    EXPECT(fspf_volume_open_options(volume, ok, &v, &err), FSPF_OK, err);
    fspf_volume_close(v);
    const char *unknown[] = {kf, tg, "colour=blue", NULL};
    EXPECT(fspf_volume_open_options(volume, unknown, &v, &err), FSPF_E_USAGE, err);
    const char *two[] = {kf, "key-env=FSPF_NO_SUCH_VARIABLE", tg, NULL};
    EXPECT(fspf_volume_open_options(volume, two, &v, &err), FSPF_E_USAGE, err);
    const char *unset[] = {"key-env=FSPF_NO_SUCH_VARIABLE", tg, NULL};
    EXPECT(fspf_volume_open_options(volume, unset, &v, &err), FSPF_E_KEY_SOURCE, err);
    const char *notag[] = {kf, NULL};
    EXPECT(fspf_volume_open_options(volume, notag, &v, &err), FSPF_E_USAGE, err);
    const char *unchecked[] = {kf, "no-tag-check=true", NULL};
    EXPECT(fspf_volume_open_options(volume, unchecked, &v, &err), FSPF_OK, err);
    fspf_volume_close(v);
    const char *noeq[] = {"key-file", NULL};
    EXPECT(fspf_volume_open_options(volume, noeq, &v, &err), FSPF_E_USAGE, err);
    /* Key from the environment: removed once read. */
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    setenv("FSPF_CHECK_KEY", hex, 1);
    const char *env[] = {"key-env=FSPF_CHECK_KEY", tg, NULL};
    EXPECT(fspf_volume_open_options(volume, env, &v, &err), FSPF_OK, err);
    CHECK(getenv("FSPF_CHECK_KEY") == NULL, "the key variable is removed once read");
    fspf_volume_close(v);

    for (int c = 0; c <= FSPF_E_INTERNAL; c++) CHECK(strcmp(fspf_strerror(c), "unknown status") != 0, "code %d has a text", c);
    CHECK(strcmp(fspf_strerror(99), "unknown status") == 0, "unknown code");
    fspf_volume_close(NULL);
    fspf_close(NULL);
    fspf_dir_close(NULL);
}

int main(int argc, char **argv) {
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "--attributes") == 0) attributes = 1, a++;
    if (argc - a < 4) {
        fprintf(stderr, "usage: fspf_check [--attributes] VOLUME KEY_HEX_FILE TAG PLAIN_DIR [TAMPERED_VOLUME]\n");
        return 2;
    }
    const char *volume = argv[a], *keyfile = argv[a + 1], *tag = argv[a + 2], *plain = argv[a + 3];
    const char *tampered = argc - a > 4 ? argv[a + 4] : NULL;
    size_t keytext_size;
    unsigned char *keytext = slurp(keyfile, &keytext_size);
    CHECK(keytext != NULL && keytext_size >= 64, "key file %s", keyfile);
    uint8_t key[32];
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)(hexval(keytext[2 * i]) << 4 | hexval(keytext[2 * i + 1]));
    free(keytext);
    CHECK(fspf_version() != NULL && strlen(fspf_version()) > 0, "version");

    errors(volume, key, tag, keyfile);

    fspf_error err;
    fspf_volume *v = NULL;
    EXPECT(fspf_volume_open(volume, key, 32, tag, 0, &v, &err), FSPF_OK, err);
    CHECK(err.code == FSPF_OK && err.message[0] == 0, "success clears the record");
    char full[65];
    EXPECT(fspf_volume_tag(v, full, &err), FSPF_OK, err);
    CHECK(strlen(full) == 64 && strncmp(full, tag, strlen(tag)) == 0, "tag %s, expected %s", full, tag);
    CHECK(fspf_volume_format(v) == 2, "format %d", fspf_volume_format(v));

    fspf_stat root;
    EXPECT(fspf_stat_path(v, "/", &root, &err), FSPF_OK, err);
    CHECK(root.type == FSPF_TYPE_DIRECTORY && root.inode == 1, "root");
    EXPECT(fspf_stat_path(v, "", &root, &err), FSPF_OK, err);
    EXPECT(fspf_stat_path(v, "no/such/file", &root, &err), FSPF_E_NOT_FOUND, err);
    CHECK(strstr(err.message, "no/such/file") != NULL, "message names the path: %s", err.message);
    EXPECT(fspf_stat_path(v, "../etc", &root, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_stat_path(v, NULL, &root, &err), FSPF_E_USAGE, err);
    EXPECT(fspf_stat_path(NULL, "/", &root, &err), FSPF_E_USAGE, err);
    fspf_file *f = NULL;
    EXPECT(fspf_open(v, "/", &f, &err), FSPF_E_NOT_A_FILE, err);

    const char *largest = NULL;
    size_t largest_size = 0;
    compare_tree(v, "", plain, &largest, &largest_size);
    CHECK(largest != NULL, "the volume has an encrypted file");
    fspf_dir *d = NULL;
    EXPECT(fspf_list(v, largest, &d, &err), FSPF_E_NOT_A_DIRECTORY, err);
    CHECK(d == NULL, "a failed list leaves NULL");

    /* Eight threads, one handle. */
    char ppath[4096];
    snprintf(ppath, sizeof ppath, "%s/%s", plain, largest);
    size_t size;
    unsigned char *bytes = slurp(ppath, &size);
    EXPECT(fspf_open(v, largest, &f, &err), FSPF_OK, err);
    pthread_t threads[8];
    struct reader_args args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (struct reader_args){f, bytes, size, (unsigned)i * 7919u + 1, 0};
        pthread_create(&threads[i], NULL, reader, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].failures == 0, "thread %d: %d failed reads", i, args[i].failures);
    }
    /* A file handle keeps its volume: closing the volume first is safe. */
    fspf_volume_close(v);
    size_t got = 0;
    unsigned char small[100];
    EXPECT(fspf_pread(f, small, sizeof small, 0, &got, &err), FSPF_OK, err);
    CHECK(got == (size < 100 ? size : 100) && memcmp(small, bytes, got) == 0, "read after the volume was closed");
    fspf_close(f);

    if (tampered) {
        /* The same volume with altered bytes in the largest file's data. */
        EXPECT(fspf_volume_open(tampered, key, 32, tag, 0, &v, &err), FSPF_OK, err);
        EXPECT(fspf_open(v, largest, &f, &err), FSPF_OK, err);
        unsigned char *buf = malloc(size);
        memset(buf, 0xAA, size);
        got = 12345;
        fspf_status s = fspf_pread(f, buf, size, 0, &got, &err);
        EXPECT(s, FSPF_E_INTEGRITY, err);
        CHECK(strstr(err.message, largest + (largest[0] == '/')) != NULL && strstr(err.message, "chunk") != NULL, "message: %s", err.message);
        CHECK(got == 0, "nothing read");
        size_t nonzero = 0;
        for (size_t i = 0; i < size; i++) nonzero += buf[i] != 0;
        CHECK(nonzero == 0, "%zu bytes left in the buffer after an integrity failure", nonzero);
        free(buf);
        fspf_close(f);
        fspf_volume_close(v);
    }
    free(bytes);
    free((void *)largest);
    printf("ok: %d checks\n", checks);
    return 0;
}
