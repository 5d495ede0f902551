/**
 * nn_closure.h: the one public C interface of the pyclosure bridge.
 *
 * A learned closure (a TorchScript file written by pyclosure.export, or any
 * plain TorchScript file) is loaded once and run every time step, in-process,
 * on CPU or GPU. C programs, the Fortran module `nn_closure` (iso_c_binding)
 * and Python (cffi, reading this very file) all bind to these declarations.
 *
 * Rules:
 *  - Every function returns an int status: NNC_OK (0) or one of nnc_status.
 *    nnc_last_error() then says in words what went wrong, for this thread.
 *  - Nothing here calls exit or abort, and no C++ exception crosses it.
 *  - Handles are opaque; nnc_model_free is idempotent and sets the handle NULL.
 *  - Strings are copied "into buf" of buflen bytes, NUL included. A string that
 *    does not fit is NNC_ERR_ARGUMENT (buf gets "", the message the size it
 *    needs), never a silent cut; only nnc_last_error_copy and
 *    nnc_model_stats_summary truncate, and nnc_model_contract reports *needed.
 *    Device and engine names fit in NNC_NAME_LEN bytes.
 *  - Layout: arrays are described as the caller sees them. A Fortran array
 *    x(nfeat, ncol) passed with order NNC_ORDER_F is the torch tensor
 *    (ncol, nfeat): the Fortran shape reversed, no transpose, no copy.
 *
 * The constants below (enums) and structs have copies for Fortran
 * (fortran/nn_closure_c.f90, fortran/nn_closure.f90) and Python
 * (pyclosure/_header.py): after changing them run `python fortran/generate.py`
 * and rebuild. tests/python/test_header_agreement.py fails until every copy,
 * the bind(c) types and the Fortran bindings agree with this file.
 */
#ifndef NN_CLOSURE_H
#define NN_CLOSURE_H

#ifndef NNC_CFFI_CDEF
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#endif

/** Status codes. Fixed values: never renumber, only append. */
enum nnc_status {
    NNC_OK = 0,
    NNC_ERR_IO = 1,         /**< file missing, unreadable or unwritable */
    NNC_ERR_FORMAT = 2,     /**< not a model file, truncated, bad contract, unusable package */
    NNC_ERR_BAD_DEVICE = 3, /**< malformed device string */
    NNC_ERR_NO_DEVICE = 4,  /**< device not available (e.g. CUDA without CUDA) */
    NNC_ERR_HANDLE = 5,     /**< NULL, never loaded or already freed handle */
    NNC_ERR_NARGS = 6,      /**< wrong number of inputs or outputs */
    NNC_ERR_RANK = 7,       /**< an array has the wrong rank */
    NNC_ERR_SHAPE = 8,      /**< an array has the wrong shape */
    NNC_ERR_DTYPE = 9,      /**< an array has the wrong element type */
    NNC_ERR_ARGUMENT = 10,  /**< invalid argument (NULL pointer, bad index, ...) */
    NNC_ERR_RUNTIME = 11,   /**< the model raised an error while running */
    NNC_ERR_NONFINITE = 12, /**< non-finite values where they are not allowed */
    NNC_ERR_RECORD = 13,    /**< recording failed (disk, cap, format) */
    NNC_ERR_MEMORY = 14,    /**< out of memory */
    NNC_ERR_UNTRUSTED = 15, /**< a trusted list is set and the file is not on it */
    NNC_ERR_TRAIN = 16,     /**< online training failed: the spec or the Python training code raised, or no Python */
    NNC_ERR_INTERNAL = 99   /**< a bug in the bridge: please report it */
};

/** Element types of arrays. */
enum nnc_dtype {
    NNC_FLOAT32 = 1,
    NNC_FLOAT64 = 2,
    NNC_INT32 = 3,
    NNC_INT64 = 4
};

/** How an array's shape and strides are listed. */
enum nnc_order {
    NNC_ORDER_C = 0, /**< shape[0] is the slowest index (torch, numpy) */
    NNC_ORDER_F = 1  /**< shape[0] is the fastest index (Fortran) */
};

/** Limits. */
enum nnc_limits {
    NNC_MAX_RANK = 8,
    NNC_NAME_LEN = 64 /**< bytes of an nnc_io_info name; device and engine names fit too */
};

/**
 * An array as the caller sees it. The bridge never owns `data`.
 * strides are in elements, listed in the same order as shape; a NULL
 * `strides` pointer means contiguous in the given order. Inputs with
 * contiguous (or any strided) host memory on CPU are used in place.
 */
typedef struct nnc_array {
    void *data;
    int dtype; /**< nnc_dtype */
    int rank;  /**< 0..NNC_MAX_RANK */
    int order; /**< nnc_order */
    int64_t shape[NNC_MAX_RANK];
    const int64_t *strides; /**< NULL, or rank element strides */
} nnc_array;

/** What the model's contract says of one input or output. */
typedef struct nnc_io_info {
    char name[NNC_NAME_LEN];
    int dtype;                   /**< nnc_dtype; 0 if the contract does not say */
    int rank;                    /**< per-sample rank (without the batch dim) */
    int64_t shape[NNC_MAX_RANK]; /**< per-sample shape in torch (C) order; -1: any */
} nnc_io_info;

typedef struct nnc_model_s *nnc_model;

/** Why a column was flagged (bits of the per-column flags array). */
enum nnc_flag {
    NNC_FLAG_NONFINITE_INPUT = 1,  /**< an input value of the column is NaN or Inf */
    NNC_FLAG_NONFINITE_OUTPUT = 2, /**< an output value of the column is NaN or Inf */
    NNC_FLAG_OOD = 4               /**< the model's OOD score is above its threshold */
};

/** Statistics of one model since it was loaded (see nnc_model_stats). */
typedef struct nnc_stats {
    int64_t calls;                    /**< forward calls that succeeded */
    int64_t errors;                   /**< forward calls that returned an error */
    int64_t columns;                  /**< columns (batch rows) over all calls */
    int64_t fallback_columns;         /**< columns given the host's fallback values */
    int64_t nonfinite_input_columns;  /**< columns with a non-finite input */
    int64_t nonfinite_output_columns; /**< columns with a non-finite output */
    int64_t ood_columns;              /**< columns flagged out of distribution */
    double time_min;                  /**< seconds per successful call */
    double time_median;               /**< (from 2 % wide bins: about 1 % accurate) */
    double time_max;
    double time_total;
    int64_t reserved[6];
} nnc_stats;

/** Bridge version "MAJOR.MINOR.PATCH" and the libtorch it was built with.
 *  Both strings are static; never free them. */
int nnc_version(const char **version, const char **libtorch_version);

/** The message of the last failed call on this thread ("" if none).
 *  Valid until the next bridge call on this thread. Never NULL. */
const char *nnc_last_error(void);

/** Copy the last message into buf (always NUL-terminated, truncated to
 *  buflen-1 bytes). For Fortran callers. */
int nnc_last_error_copy(char *buf, size_t buflen);

/** Set the intra-op thread count every later call runs with, on every thread (n >= 1).
 *  Without it: NN_CLOSURE_NUM_THREADS, else 1 (closure calls are small). It also sets
 *  the calling thread's OpenMP thread count; a call alone restores the caller's.
 *  Bit-for-bit comparisons hold only for the same thread count. */
int nnc_set_num_threads(int n);
/** The intra-op thread count calls run with (see nnc_set_num_threads). */
int nnc_get_num_threads(int *n);

/**
 * Load a model file. `device` is "cpu", "cuda", "cuda:N" or "auto" ("auto":
 * a GPU chosen by the MPI local rank when CUDA is present, else the CPU);
 * NULL means "cpu". On success *model is a new handle (free it with
 * nnc_model_free); on failure *model is NULL.
 * The engine follows the file's content: a TorchScript archive (.pt) or an
 * AOTInductor package (.pt2, which must carry a pyclosure contract and must
 * have a .pt2 name). A .pt2 holds a shared library compiled where it was
 * exported: load only packages you trust. When the environment variable
 * PYCLOSURE_TRUSTED_SHA256 (SHA-256 digests in hex, separated by commas,
 * colons or spaces) or the trusted_sha256 option is set, a file whose digest
 * is not listed is refused before any of it is loaded.
 * Errors: NNC_ERR_IO (missing/unreadable), NNC_ERR_FORMAT (not a model file,
 * truncated, invalid embedded contract, a package built for another CPU or
 * device), NNC_ERR_UNTRUSTED, NNC_ERR_BAD_DEVICE, NNC_ERR_NO_DEVICE.
 */
int nnc_model_load(nnc_model *model, const char *path, const char *device);

/**
 * Load with guardrail options, a string of key=value pairs separated by
 * commas or spaces (NULL or "" for the defaults):
 *   nonfinite=error|fallback|off  NaN/Inf in any input or output. error
 *       (default): NNC_ERR_NONFINITE naming the variable and the column,
 *       nothing written; fallback: those columns get the host's fallback
 *       values; off: no check.
 *   ood=off|flag|fallback  the model's out-of-distribution score (the
 *       contract's "ood" output, e.g. pyclosure.ood.GuardedClosure) against
 *       its threshold: flag counts and flags the columns; fallback also
 *       gives them the host's fallback values. Needs a model with a score.
 *   ood_threshold=X  use X instead of the contract's threshold.
 *   trusted_sha256=HEX  trust only files with this SHA-256 (repeat the
 *       option, or join digests with ':', to trust several); added to
 *       PYCLOSURE_TRUSTED_SHA256 when both are set.
 *   engine=native|torchscript|aoti  the engine the host requires: a file
 *       for another engine (a TorchScript .pt, an AOTInductor .pt2, a
 *       native .nnp program) is refused with NNC_ERR_FORMAT before any of
 *       it is loaded. Default: the engine the file calls for.
 * With a fallback policy every call must pass fallback arrays
 * (nnc_model_forward_fallback). Errors as nnc_model_load, plus
 * NNC_ERR_ARGUMENT for a bad option.
 */
int nnc_model_load_with(nnc_model *model, const char *path, const char *device, const char *options);

/** The options in effect, e.g. "nonfinite=error, ood=off" (into buf). */
int nnc_model_policy(nnc_model model, char *buf, size_t buflen);

/** Free a model and set *model to NULL. Freeing NULL (twice) is NNC_OK.
 *  A recording is stopped first; if its last record cannot be written the
 *  model is still freed and NNC_ERR_RECORD returned. */
int nnc_model_free(nnc_model *model);

/** 1 if the file carried a pyclosure contract (then every call is checked
 *  against it), 0 for a plain TorchScript file. */
int nnc_model_has_contract(nnc_model model, int *has_contract);

/** The embedded contract JSON ("" if none). Copies into buf when buflen is
 *  large enough; *needed gets the size including the NUL either way. */
int nnc_model_contract(nnc_model model, char *buf, size_t buflen, size_t *needed);

/** The device the model runs on, e.g. "cpu" or "cuda:0" (into buf). */
int nnc_model_device(nnc_model model, char *buf, size_t buflen);

/** The engine that runs the model: "torchscript" or "aotinductor" (into buf). */
int nnc_model_engine(nnc_model model, char *buf, size_t buflen);

/** Number of inputs and outputs the contract declares (0 without one). */
int nnc_model_num_io(nnc_model model, int *num_inputs, int *num_outputs);

/** Describe input (is_output = 0) or output (is_output = 1) number index
 *  (0-based). NNC_ERR_ARGUMENT for an index out of range. */
int nnc_model_io(nnc_model model, int is_output, int index, nnc_io_info *info);

/**
 * Run the model: num_inputs arrays in, num_outputs arrays out. Outputs are
 * written into the caller's buffers, which must have the shape and dtype of
 * the result (batch first, as inputs). With a contract every array is checked
 * first and an error names the argument, the expected and the actual
 * shape or dtype; nothing is written to the outputs on error.
 * Errors: NNC_ERR_HANDLE, NNC_ERR_NARGS, NNC_ERR_RANK, NNC_ERR_SHAPE,
 * NNC_ERR_DTYPE, NNC_ERR_ARGUMENT, NNC_ERR_RUNTIME, NNC_ERR_NONFINITE (a NaN
 * or Inf in an input or output under the default nonfinite=error policy).
 */
int nnc_model_forward(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                      const nnc_array *outputs);

/**
 * nnc_model_forward with the host's classical result for fallback: arrays
 * fallback[0..num_fallback-1] have the shape and dtype of outputs
 * 0..num_fallback-1 (later outputs, such as an OOD score, have none). Columns
 * flagged under a fallback policy get the fallback's values in those
 * outputs; every other column keeps the network's. `flags`, when not NULL,
 * is an int32 array with one entry per column and receives nnc_flag bits
 * (0 for a clean column). Either pointer may be NULL when not needed.
 * Errors: as nnc_model_forward, plus NNC_ERR_NONFINITE (nonfinite=error).
 */
int nnc_model_forward_fallback(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                               const nnc_array *outputs, int num_fallback, const nnc_array *fallback,
                               const nnc_array *flags);

/* ---- Device-resident arrays ---------------------------------------------
 * The on-device route: every array (inputs, outputs, fallback, flags) lives
 * where the model runs and is used there in place, with no host round trip:
 * for a model on "cuda:N", memory of device N (cudaMalloc, CUDA Fortran
 * `device` arrays, OpenACC `host_data use_device`, torch or cupy CUDA
 * tensors) or CUDA managed memory; for a CPU model, host memory (the same path,
 * so it is tested on machines without a GPU). The descriptors themselves
 * (nnc_array, shape, strides) stay in host memory.
 *  - Checked: each pointer's device, from the CUDA driver's pointer
 *    attributes. Host memory for a CUDA model, or another GPU's memory, is
 *    NNC_ERR_ARGUMENT naming the array; so is GPU memory for a CPU model when
 *    the CUDA driver is loaded in the process.
 *  - Guardrails run on the device: the non-finite check reduces each column
 *    there and copies one byte per column (plus the first bad value, for the
 *    message) to the host; the OOD check copies the score output (one value
 *    per column). Recording copies the recorded arrays to the host, on
 *    sampled calls only. nnc_record_array takes host arrays only.
 *  - Streams: the model runs on torch's current stream of the device (the
 *    legacy default stream unless this thread set another in torch). Inputs
 *    must be complete when the call is made: a host that wrote them on its
 *    own non-blocking stream or an async OpenACC queue waits for it first
 *    (cudaStreamSynchronize, `!$acc wait`). On return, that stream has been
 *    synchronised: the outputs are complete and may be read by any stream or
 *    copied to the host.
 * Errors: as nnc_model_forward_fallback, plus NNC_ERR_ARGUMENT for an array
 * that does not live on the model's device.
 */
int nnc_model_forward_on_device(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                                const nnc_array *outputs);

/** nnc_model_forward_fallback on the on-device route (fallback and flags too
 *  live on the model's device). */
int nnc_model_forward_on_device_fallback(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                                         const nnc_array *outputs, int num_fallback, const nnc_array *fallback,
                                         const nnc_array *flags);

/** Statistics since load. With NN_CLOSURE_STATS=1 in the environment a
 *  one-paragraph summary goes to stderr when the model is freed. */
int nnc_model_stats(nnc_model model, nnc_stats *stats);

/** That summary as text (into buf, truncated to buflen). */
int nnc_model_stats_summary(nnc_model model, char *buf, size_t buflen);

/* ---- Recording for replay ------------------------------------------------
 * While a model records, every `every`-th forward call (the first one after
 * the start, then every n-th) is written as one record file
 * dir/record_<call>.npz: a zip of .npy arrays (numpy.load reads it, no
 * pickle) with the call's inputs and outputs, the host arrays added with
 * nnc_record_array, and meta.json: call index, model SHA-256, device, thread
 * count, libtorch and bridge versions, dtypes, shapes and a SHA-256 of every
 * array (the zip's CRC-32 also covers every byte). A record is written to
 * a ".partial" file, flushed to disk and renamed, so a killed run leaves
 * every earlier record intact and at most one ".partial" file.
 * dir/recording.json summarises the run: state "recording", "stopped",
 * "capped" or "failed", calls seen, records and bytes written.
 * At the size cap recording stops (recording.json says so, and stderr once);
 * the model keeps running. Recording can also be started without changing
 * the host: NN_CLOSURE_RECORD=dir (records go to dir/<model>-rank<r> or
 * dir/<model>-pid<p>), NN_CLOSURE_RECORD_EVERY=n, NN_CLOSURE_RECORD_MAX_MB=m.
 * Start, stop and forward must not run at the same time on one model. */

/** Start recording into dir (created if missing; must not already hold a
 *  recording). every >= 1; max_bytes <= 0 means the default cap, 1 GiB.
 *  Errors: NNC_ERR_RECORD (directory, cap, already recording), NNC_ERR_IO. */
int nnc_record_start(nnc_model model, const char *dir, int every, int64_t max_bytes);

/** Add a host array (state before or after the step, dt, dx, boundary
 *  fluxes...) to the record of the last forward call, under `name` (letters,
 *  digits, '_', '-', '.'). Stored as the caller sees it (a Fortran array
 *  keeps its shape, in Fortran order). NNC_OK and nothing stored when the
 *  model is not recording or the last call was not sampled. */
int nnc_record_array(nnc_model model, const char *name, const nnc_array *array);

/** Write the open record and stop recording (NNC_OK when not recording).
 *  nnc_model_free stops a recording too. */
int nnc_record_stop(nnc_model model);

/** The directory being recorded into ("" when not recording), into buf. */
int nnc_record_dir(nnc_model model, char *buf, size_t buflen);

/* ---- Online training ---------------------------------------------------
 * A trainer, bound to a loaded model, trains a Python copy of the model's
 * network while the host runs: each nnc_train_step runs pyclosure's Python
 * training code (pyclosure.online) in an interpreter embedded in this
 * process, on zero-copy views of the host's arrays (same layout convention
 * as nnc_model_forward). Inference keeps running in the model's engine; new
 * weights reach it only through nnc_train_sync. The interpreter is started
 * by the first nnc_train_create (libpyclosure_train_embed, beside this
 * library, is loaded then): a host that never trains never starts Python.
 * Inside a Python process the running interpreter is used.
 * A Python exception becomes a status (NNC_ERR_TRAIN, or the status of a
 * pyclosure error, e.g. NNC_ERR_SHAPE) and its message, never an exit.
 * Calls on one trainer must not overlap; nnc_train_sync must not run while
 * another thread runs forward on the same model. */

typedef struct nnc_trainer_s *nnc_trainer;

/**
 * Create a trainer for `model` from a training spec: "FILE.py:FUNCTION",
 * "package.module:FUNCTION", or NULL/"" for pyclosure.online.default_spec
 * (which trains the model file itself: a TorchScript .pt, Adam, MSE). The
 * function gets a pyclosure.online.SpecContext and returns a TrainingSpec
 * (module, optimizer, loss, ...). `options`: key=value pairs separated by
 * commas or spaces, passed to the spec (lr=1e-3, seed=0, ...), plus:
 *   versions=DIR  save every synced weight version (DIR/weights-vN.pt and its
 *       SHA-256 in DIR/versions.json) for replay;
 *   rank=R, size=N, rendezvous=FILE  data-parallel training over N processes
 *       (torch.distributed: gloo on CPU, NCCL for CUDA tensors): every rank
 *       calls create with the same FILE (a path on a file system all ranks
 *       share, not existing yet).
 *       A rank whose spec fails returns its own message; the others return
 *       NNC_ERR_TRAIN naming it, none hangs.
 * Errors: NNC_ERR_HANDLE (model), NNC_ERR_IO (spec file missing),
 * NNC_ERR_ARGUMENT (bad option), NNC_ERR_TRAIN (spec raised, no Python).
 */
int nnc_train_create(nnc_trainer *trainer, nnc_model model, const char *spec, const char *options);

/**
 * One optimiser step on a batch: inputs as the model's forward takes them,
 * targets shaped like the model's outputs (batch first). The arrays are
 * viewed in place, not copied, and never written. *loss (may be NULL)
 * receives the batch loss before the step (averaged over ranks).
 * Errors: NNC_ERR_HANDLE, NNC_ERR_NARGS, NNC_ERR_SHAPE, NNC_ERR_DTYPE,
 * NNC_ERR_NONFINITE (a NaN/Inf loss: the step is not applied), NNC_ERR_TRAIN.
 */
int nnc_train_step(nnc_trainer trainer, int num_inputs, const nnc_array *inputs, int num_targets,
                   const nnc_array *targets, double *loss);

/**
 * Put the trainer's current weights into `model` (any model whose network
 * has the trainer's parameter names and shapes) without recompiling:
 * TorchScript copies each parameter in place, AOTInductor updates the
 * package's constant buffer, native rebuilds its packed program. Each sync
 * is a new weight version: records made after it name the version and its
 * SHA-256. Nothing changes when any name or shape differs (NNC_ERR_SHAPE).
 * Errors: NNC_ERR_HANDLE, NNC_ERR_SHAPE, NNC_ERR_TRAIN, NNC_ERR_IO (versions).
 */
int nnc_train_sync(nnc_trainer trainer, nnc_model model);

/** The weight version last synced by this trainer (0 before the first sync). */
int nnc_train_version(nnc_trainer trainer, int64_t *version);

/** Save a checkpoint (module and optimiser state, step count, version) to
 *  path with torch.save; torch.load(path, weights_only=True) reads it.
 *  Errors: NNC_ERR_IO, NNC_ERR_TRAIN. */
int nnc_train_save(nnc_trainer trainer, const char *path);

/** Free a trainer and set *trainer to NULL. Freeing NULL (twice) is NNC_OK. */
int nnc_train_free(nnc_trainer *trainer);

#ifndef NNC_CFFI_CDEF
#ifdef __cplusplus
}
#endif
#endif

#endif /* NN_CLOSURE_H */
