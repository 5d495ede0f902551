/* engine_option.c: the engine= load option from C. A host that requires one engine gets
 * NNC_ERR_FORMAT and a message naming both engines for a file of another, and loads a file
 * of its own. Usage: engine_option NATIVE.nnp TORCHSCRIPT.pt; prints "engine_option: done". */
#include <stdio.h>
#include <string.h>

#include "nn_closure.h"

static int expect(const char *path, const char *options, int status, const char *text) {
    nnc_model m = NULL;
    int rc = nnc_model_load_with(&m, path, "cpu", options);
    const char *msg = rc == NNC_OK ? "" : nnc_last_error();
    int ok = rc == status && (!text || strstr(msg, text) != NULL);
    printf("%s with %s: status %d, %s\n", path, options, rc, msg);
    if (rc == NNC_OK) {
        char engine[32];
        ok = ok && nnc_model_engine(m, engine, sizeof engine) == NNC_OK && strstr(options, engine) != NULL;
    }
    nnc_model_free(&m);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int ok = expect(argv[1], "engine=torchscript", NNC_ERR_FORMAT,
                    "(engine native), but the load option "
                    "engine=torchscript") &&
             expect(argv[2], "engine=native", NNC_ERR_FORMAT,
                    "(engine torchscript), but the load option "
                    "engine=native") &&
             expect(argv[2], "engine=aoti", NNC_ERR_FORMAT, "requires a file for the aoti engine") &&
             expect(argv[1], "engine=native", NNC_OK, NULL) && expect(argv[2], "engine=torchscript", NNC_OK, NULL) &&
             expect(argv[1], "engine=gpu", NNC_ERR_ARGUMENT, "use native, torchscript or aoti");
    printf("engine_option: %s\n", ok ? "done" : "FAILED");
    return ok ? 0 : 1;
}
