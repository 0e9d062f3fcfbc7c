/*
 * Part of `make bench` (scripts/bench-read.sh): one process, THREADS threads, reading one file
 * in BLOCK-byte requests, either through libfspf in-process or with pread(2) on a path (a file
 * on fspf-mount, or a plain file), so both are measured with the same access pattern.
 *
 *   read-bench lib VOLUME KEYFILE TAG PATH_IN_VOLUME seq|rand BLOCK THREADS SECONDS
 *   read-bench posix FILE seq|rand BLOCK THREADS SECONDS
 *
 * seq: the file is cut into THREADS contiguous parts, each read front to back once.
 * rand: every BLOCK-aligned block once, in a random order (a permutation cut among the
 * threads), so that no request is served from a cache of plaintext a previous one left.
 * SECONDS bounds either (0: no bound).
 * Prints "MB/s IOPS" (MB = 10^6 bytes).
 */
#include "fspf.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static fspf_file *file;
static int fd = -1;
static uint64_t size;
static size_t block;
static int threads, random_mode;
static double seconds;

struct worker {
    int index;
    uint64_t bytes, requests;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t read_at(void *buffer, uint64_t offset) {
    if (file) {
        size_t got = 0;
        fspf_error err;
        if (fspf_pread(file, buffer, block, offset, &got, &err) != FSPF_OK) {
            fprintf(stderr, "read-bench: %s\n", err.message);
            exit(1);
        }
        return got;
    }
    ssize_t got = pread(fd, buffer, block, (off_t)offset);
    if (got < 0) {
        perror("read-bench: pread");
        exit(1);
    }
    return (size_t)got;
}

static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

static void *work(void *p) {
    struct worker *w = p;
    void *buffer = aligned_alloc(4096, (block + 4095) / 4096 * 4096);
    uint64_t blocks = (size + block - 1) / block;
    uint64_t first = blocks * (uint64_t)w->index / (uint64_t)threads, last = blocks * (uint64_t)(w->index + 1) / (uint64_t)threads;
    /* i -> (i * step + 7) mod blocks is a permutation when step and blocks are coprime. */
    uint64_t step = 2654435761u % blocks;
    while (step == 0 || gcd(step, blocks) != 1) step++;
    double end = seconds > 0 ? now() + seconds : 1e300;
    for (uint64_t i = first; i < last && ((i - first) % 64 != 0 || now() < end); i++) {
        uint64_t b = random_mode ? (uint64_t)(((unsigned __int128)i * step + 7) % blocks) : i;
        w->bytes += read_at(buffer, b * block);
        w->requests++;
    }
    free(buffer);
    return NULL;
}

int main(int argc, char **argv) {
    int a;
    if (argc == 10 && strcmp(argv[1], "lib") == 0) {
        FILE *k = fopen(argv[3], "r");
        char hex[65] = {0};
        if (!k || fread(hex, 1, 64, k) != 64) {
            fprintf(stderr, "read-bench: cannot read the key file %s\n", argv[3]);
            return 1;
        }
        fclose(k);
        uint8_t key[32];
        for (int i = 0; i < 32; i++) sscanf(hex + 2 * i, "%2hhx", &key[i]);
        fspf_volume *v;
        fspf_error err;
        if (fspf_volume_open(argv[2], key, 32, argv[4], 0, &v, &err) != FSPF_OK || fspf_open(v, argv[5], &file, &err) != FSPF_OK) {
            fprintf(stderr, "read-bench: %s\n", err.message);
            return 1;
        }
        fspf_volume_close(v); /* the file keeps it */
        size = fspf_file_size(file);
        a = 6;
    } else if (argc == 7 && strcmp(argv[1], "posix") == 0) {
        struct stat st;
        fd = open(argv[2], O_RDONLY);
        if (fd < 0 || fstat(fd, &st) != 0) {
            perror(argv[2]);
            return 1;
        }
        size = (uint64_t)st.st_size;
        a = 3;
    } else {
        fprintf(stderr, "usage: read-bench lib VOLUME KEYFILE TAG PATH seq|rand BLOCK THREADS SECONDS\n"
                        "       read-bench posix FILE seq|rand BLOCK THREADS SECONDS\n");
        return 64;
    }
    random_mode = strcmp(argv[a], "rand") == 0;
    block = (size_t)atol(argv[a + 1]);
    threads = atoi(argv[a + 2]);
    seconds = atof(argv[a + 3]);
    if (block == 0 || threads < 1 || size < block) {
        fprintf(stderr, "read-bench: bad block size, thread count or file size\n");
        return 64;
    }
    pthread_t t[64];
    struct worker w[64];
    if (threads > 64) threads = 64;
    double start = now();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){i, 0, 0};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    uint64_t bytes = 0, requests = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        bytes += w[i].bytes;
        requests += w[i].requests;
    }
    double elapsed = now() - start;
    if (seconds == 0 && bytes != size) {
        fprintf(stderr, "read-bench: read %llu bytes of %llu\n", (unsigned long long)bytes, (unsigned long long)size);
        return 1;
    }
    printf("%.1f %.0f\n", (double)bytes / elapsed / 1e6, (double)requests / elapsed);
    if (file) fspf_close(file);
    return 0;
}
