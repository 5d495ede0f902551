/* The same host in C: q[ncol][nlev] here is the Fortran host's q(nlev, ncol), the same memory. */
#include <stdio.h>

#include "nn_closure.h"

int main(int argc, char **argv) {
    enum {
        NLEV = 4,
        NCOL = 3
    };
    double q[NCOL][NLEV], flux[NCOL][NLEV + 1];
    for (int k = 0; k < NLEV * NCOL; ++k) q[k / NLEV][k % NLEV] = k / 12.0;
    nnc_array in = {.data = q, .dtype = NNC_FLOAT64, .rank = 2, .order = NNC_ORDER_C, .shape = {NCOL, NLEV}};
    nnc_array out = {.data = flux, .dtype = NNC_FLOAT64, .rank = 2, .order = NNC_ORDER_C, .shape = {NCOL, NLEV + 1}};
    nnc_model model = NULL;
    if (argc < 2 || nnc_model_load(&model, argv[1], "cpu") != NNC_OK ||
        nnc_model_forward(model, 1, &in, 1, &out) != NNC_OK) {
        fprintf(stderr, "first_host: %s\n", nnc_last_error());
        nnc_model_free(&model);
        return 1;
    }
    for (int j = 0; j < NCOL; ++j) {
        printf("flux");
        for (int k = 0; k < NLEV + 1; ++k) printf(" %.16e", flux[j][k]);
        printf("\n");
    }
    return nnc_model_free(&model);
}
