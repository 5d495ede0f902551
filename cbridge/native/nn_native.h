/* nn_native.h: the native engine's kernel library, plain C11 with no torch.
 *
 * A native program (a ".nnp" file, see README.md) is a short list of ops over one
 * column's vector: normalisers, dense layers, activations and the periodic window of a
 * flux closure. Every value is computed under one written arithmetic contract
 * (NNN_ARITH, README.md), so a column's bits do not depend on the batch size, the
 * column range, the thread count or the instruction set the kernels run on.
 *
 * Thread safety: a loaded program is read-only; any number of threads may call
 * nnn_run on it at once, each with its own workspace.
 */
#ifndef NN_NATIVE_H
#define NN_NATIVE_H

#ifndef NNN_CFFI_CDEF
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#endif

/* The arithmetic contract this library implements and the file format it reads. */
#define NNN_ARITH "pyclosure.native.arith/2"
#define NNN_FORMAT_VERSION 1

enum nnn_status {
    NNN_OK = 0,
    NNN_ERR_FORMAT = 1,   /* the file is not a valid native program */
    NNN_ERR_ARGUMENT = 2, /* a bad argument to a call */
    NNN_ERR_MEMORY = 3,   /* an allocation failed */
    NNN_ERR_ISA = 4       /* the instruction set asked for is not built or not on this CPU */
};

enum nnn_dtype {
    NNN_F32 = 1,
    NNN_F64 = 2
};

enum nnn_isa {
    NNN_ISA_AUTO = 0,   /* the best this CPU runs (the default) */
    NNN_ISA_SCALAR = 1, /* the plain C reference */
    NNN_ISA_AVX2 = 2,   /* AVX2 + FMA */
    NNN_ISA_AVX512 = 3  /* AVX-512 F + DQ (with its FMA) */
};

typedef struct nnn_program nnn_program;

/** The arithmetic contract id this library implements (NNN_ARITH; static storage). */
const char *nnn_arith(void);

/** Load a program from a memory buffer of `size` bytes (the whole file).
 *
 * Checks everything (magic, format version, arithmetic contract id, SHA-256 digest,
 * section bounds, op sizes, that the sizes chain, finite weights) before reading a
 * weight; never reads outside [data, data + size). The buffer may be freed after the
 * call: the program keeps its own packed copy of the weights. On success stores a new
 * program in *out (free it with nnn_free); on failure stores NULL and writes a message
 * of at most msg_size bytes (NUL-terminated) into msg (may be NULL).
 * Returns NNN_OK, NNN_ERR_FORMAT, NNN_ERR_ARGUMENT or NNN_ERR_MEMORY. */
int nnn_load(const void *data, size_t size, nnn_program **out, char *msg, size_t msg_size);

/** Free a program from nnn_load (NULL is allowed). */
void nnn_free(nnn_program *program);

/** The program's element type, NNN_F32 or NNN_F64: the dtype of x and y in nnn_run. */
int nnn_dtype(const nnn_program *program);

/** The pyclosure contract JSON carried by the file (not NUL-terminated; owned by the
 * program); its length in bytes goes to *size. */
const char *nnn_contract(const nnn_program *program, size_t *size);

/** Per-column sizes for a call with `ncells` cells: elements of one column's input 0 (*n_in)
 * and output (*n_out). `ncells` is the cell count N of a window program (>= 1 periodic, >= 2
 * in a column) and is ignored by a dense program. Input 1, when the program has one (the
 * surface value of a column frame), holds one value a column. Returns NNN_OK or
 * NNN_ERR_ARGUMENT. */
int nnn_sizes(const nnn_program *program, int64_t ncells, int64_t *n_in, int64_t *n_out);

/** The number of inputs a call gives: 1, or 2 when a column frame takes its surface value
 * from input 1 (README.md, "Ops"). */
int nnn_num_inputs(const nnn_program *program);

/** 1 when the program is a window program (input and output sizes follow ncells). */
int nnn_is_window(const nnn_program *program);

/** Choose the kernels of this program: NNN_ISA_AUTO (the default after loading: the widest
 * this CPU runs), NNN_ISA_SCALAR, NNN_ISA_AVX2 or NNN_ISA_AVX512. All give the same bits. Not
 * thread safe against concurrent nnn_run on the same program. Returns NNN_OK or NNN_ERR_ISA
 * (with msg). */
int nnn_set_isa(nnn_program *program, int isa, char *msg, size_t msg_size);

/** The instruction set the program's kernels use now (never NNN_ISA_AUTO). */
int nnn_isa(const nnn_program *program);

/** Bytes of workspace one nnn_run call needs (independent of batch and ncells). */
size_t nnn_workspace_size(const nnn_program *program);

/** Run columns [begin, end) of a batch of a one-input program (nnn_run_inputs for more).
 *
 * x: the whole batch's input, column-major by column: column c's n_in elements start at
 * x + c * n_in (a C-order (batch, n_in) array; Fortran x(n_in, batch)); y likewise with
 * n_out (nnn_sizes). Only columns begin..end-1 are read and written, so threads may
 * share x and y and split the columns. work: nnn_workspace_size bytes owned by the
 * caller, one per concurrent call (any alignment). No allocation, no global state.
 * Returns NNN_OK or NNN_ERR_ARGUMENT (with msg). */
int nnn_run(const nnn_program *program, void *work, int64_t ncells, const void *x, void *y, int64_t begin, int64_t end,
            char *msg, size_t msg_size);

/** nnn_run for a program of any number of inputs: x[i] is input i of the whole batch, laid
 * out as nnn_run's x (input 1: one value a column). `ninputs` must be nnn_num_inputs. */
int nnn_run_inputs(const nnn_program *program, void *work, int64_t ncells, int ninputs, const void *const *x, void *y,
                   int64_t begin, int64_t end, char *msg, size_t msg_size);

/** The library's elementwise activations on n values in place, with the kernels of `isa`
 * (for accuracy tests). act: 0 identity, 1 tanh, 2 relu, 3 softplus. Returns a status. */
int nnn_activation(int isa, int dtype, int act, void *values, int64_t n);

#ifndef NNN_CFFI_CDEF
#ifdef __cplusplus
}
#endif
#endif
#endif /* NN_NATIVE_H */
