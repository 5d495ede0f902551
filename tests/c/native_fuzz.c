/* native_fuzz.c: random-mutation fuzzing of the native program loader (and of running what
 * it accepts), meant for AddressSanitizer and UBSan builds.
 *
 * Each round takes a seed file, mutates it (bit flips, random bytes, small integers written
 * over header and op fields, truncation, extension), and most of the time rewrites the size
 * field and the SHA-256 digest so the structural checks behind the digest are reached. The
 * mutant lies in a buffer of exactly its size, so any read outside it is caught. An accepted
 * program is run on a few columns with each instruction set (exact-size x, y, workspace).
 * Usage: native_fuzz SECONDS SEED.nnp [SEED.nnp ...]; prints one JSON line with counts.
 * With -DNNN_LIBFUZZER only LLVMFuzzerTestOneInput is built (clang -fsanitize=fuzzer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "native_internal.h"

static long accepted, refused, ran;

static void try_run(const nnn_program *p) {
    size_t ws = nnn_workspace_size(p);
    if (ws > ((size_t)64 << 20)) return; /* a huge but valid program: nothing to learn here */
    int64_t ncells = 1 + rand() % 9, n_in, n_out, batch = 1 + rand() % 13;
    if (nnn_sizes(p, ncells, &n_in, &n_out) != NNN_OK && nnn_sizes(p, ++ncells, &n_in, &n_out) != NNN_OK) return;
    size_t elem = nnn_dtype(p) == NNN_F32 ? 4 : 8;
    /* input 0 and, for a column frame's surface, input 1 (one value a column) */
    unsigned char *x = malloc((size_t)(batch * (n_in + 1)) * elem), *y = malloc((size_t)(batch * n_out) * elem);
    void *work = malloc(ws);
    for (int64_t k = 0; k < batch * (n_in + 1); ++k) {
        if (elem == 4) ((float *)x)[k] = (float)(rand() % 2001 - 1000) / 100.0f;
        else ((double *)x)[k] = (double)(rand() % 2001 - 1000) / 100.0;
    }
    const int ninputs = nnn_num_inputs(p); /* an array of exactly that many pointers */
    const void **inputs = malloc((size_t)ninputs * sizeof *inputs);
    inputs[0] = x;
    if (ninputs > 1) inputs[1] = x + (size_t)(batch * n_in) * elem;
    int isas[2] = {NNN_ISA_SCALAR, NNN_ISA_AUTO};
    for (int i = 0; i < 2; ++i) {
        nnn_set_isa((nnn_program *)p, isas[i], NULL, 0);
        nnn_run_inputs(p, work, ncells, ninputs, inputs, y, 0, batch, NULL, 0);
    }
    ran++;
    free(inputs);
    free(x);
    free(y);
    free(work);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    nnn_program *p = NULL;
    char msg[256];
    if (nnn_load(data, size, &p, msg, sizeof msg) == NNN_OK) {
        accepted++;
        try_run(p);
        nnn_free(p);
    } else {
        refused++;
    }
    return 0;
}

#ifndef NNN_LIBFUZZER
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

static const uint32_t INTERESTING[] = {
    0,          1,          2,          3,         5,  6,  7,   8,   15,  16,       17,
    31,         32,         33,         63,        64, 65, 127, 128, 255, 1u << 20, (1u << 20) + 1,
    0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe};

static size_t mutate(unsigned char *buf, size_t size, size_t cap) {
    int n = 1 + rand() % 4;
    for (int m = 0; m < n && size >= 8; ++m) {
        size_t limit = size < 1024 || rand() % 2 ? size : 1024; /* header, contract, ops mostly */
        switch (rand() % 6) {
            case 0: buf[rand() % limit] ^= (unsigned char)(1u << (rand() % 8)); break;
            case 1: buf[rand() % limit] = (unsigned char)rand(); break;
            case 2:
            case 3: {
                size_t at = (size_t)(rand() % (int)(limit / 4)) * 4;
                uint32_t v = INTERESTING[rand() % (sizeof INTERESTING / sizeof *INTERESTING)];
                if (at + 4 <= size) memcpy(buf + at, &v, 4);
                break;
            }
            case 4: size = (size_t)rand() % (size + 1); break;
            default: {
                size_t grow = (size_t)(rand() % 200);
                if (size + grow <= cap) {
                    memset(buf + size, rand() & 0xff, grow);
                    size += grow;
                }
            }
        }
    }
    return size;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: native_fuzz SECONDS SEED.nnp [SEED.nnp ...]\n");
        return 2;
    }
    int nseeds = argc - 2;
    unsigned char **seeds = calloc(nseeds, sizeof *seeds);
    size_t *sizes = calloc(nseeds, sizeof *sizes), cap = 0;
    for (int s = 0; s < nseeds; ++s) {
        FILE *f = fopen(argv[s + 2], "rb");
        if (!f) {
            perror(argv[s + 2]);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        sizes[s] = (size_t)ftell(f);
        rewind(f);
        seeds[s] = malloc(sizes[s]);
        if (fread(seeds[s], 1, sizes[s], f) != sizes[s]) return 2;
        fclose(f);
        LLVMFuzzerTestOneInput(seeds[s], sizes[s]);
        if (accepted != s + 1) {
            fprintf(stderr, "seed %s is refused\n", argv[s + 2]);
            return 1;
        }
        cap = sizes[s] + 256 > cap ? sizes[s] + 256 : cap;
    }
    srand(12345);
    unsigned char *work = malloc(cap);
    time_t stop = time(NULL) + atol(argv[1]);
    long rounds = 0;
    while (time(NULL) < stop) {
        for (int k = 0; k < 100; ++k, ++rounds) {
            int s = rand() % nseeds;
            memcpy(work, seeds[s], sizes[s]);
            size_t size = mutate(work, sizes[s], cap);
            if (rand() % 8 && size >= 160) { /* reach the checks behind the size and digest */
                put64(work + 64, size);
                nnn_sha256(work, size - 32, work + size - 32);
            }
            unsigned char *exact = malloc(size ? size : 1);
            memcpy(exact, work, size);
            LLVMFuzzerTestOneInput(exact, size);
            free(exact);
        }
    }
    printf("{\"rounds\":%ld,\"accepted\":%ld,\"refused\":%ld,\"ran\":%ld}\n", rounds, accepted, refused, ran);
    fflush(stdout);
    for (int s = 0; s < nseeds; ++s) free(seeds[s]);
    free(seeds);
    free(sizes);
    free(work);
    return 0;
}
#endif
