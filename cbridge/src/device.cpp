// device.cpp: see device.hpp. The CUDA driver (libcuda.so.1) is opened at run
// time only when a pointer must be checked, so the bridge builds against a CPU
// libtorch and needs no CUDA toolkit.
#include "device.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <c10/core/Stream.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "errors.hpp"

namespace nnc {

namespace {

const char *env(const char *name) { return std::getenv(name); }

const std::string kForms = "': use cpu, cuda, cuda:N or auto";

/// cuPointerGetAttribute of the CUDA driver API; its values are the driver's ABI.
using PointerAttribute = int (*)(void *value, int attribute, unsigned long long pointer);
constexpr int kAttrMemoryType = 2;     // CU_POINTER_ATTRIBUTE_MEMORY_TYPE
constexpr int kAttrIsManaged = 8;      // CU_POINTER_ATTRIBUTE_IS_MANAGED
constexpr int kAttrDeviceOrdinal = 9;  // CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
constexpr unsigned kMemoryDevice = 2;  // CU_MEMORYTYPE_DEVICE

/// The driver's cuPointerGetAttribute, or nullptr. With `loaded_only`, only if
/// the driver is already in the process (a CPU-only run never loads it).
PointerAttribute pointer_attribute(bool loaded_only) {  // a reference to the library is kept
    void *lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL | (loaded_only ? RTLD_NOLOAD : 0));
    return lib ? reinterpret_cast<PointerAttribute>(dlsym(lib, "cuPointerGetAttribute")) : nullptr;
}

/// The driver's cuPointerGetAttribute for CUDA models, opened once.
PointerAttribute cuda_pointer_attribute() {
    static const PointerAttribute get = pointer_attribute(false);
    return get;
}

/// Where a pointer lives: -1 host (or unknown to CUDA), -2 managed, else a device ordinal.
int where(PointerAttribute get, const void *data) {
    const auto p = reinterpret_cast<unsigned long long>(data);
    unsigned type = 0;
    if (get(&type, kAttrMemoryType, p) != 0) return -1;  // CUDA_ERROR_INVALID_VALUE: plain host memory
    unsigned managed = 0;
    if (get(&managed, kAttrIsManaged, p) == 0 && managed) return -2;
    if (type != kMemoryDevice) return -1;  // pinned or registered host memory
    int ordinal = -1;
    if (get(&ordinal, kAttrDeviceOrdinal, p) != 0) return -1;
    return ordinal;
}

}  // namespace

DeviceChoice resolve_device(const std::string &device) {
    if (device.empty() || device == "cpu") return {"cpu", "requested"};
    const bool cuda = torch::cuda::is_available();
    const int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
    if (device == "auto") return auto_device(count, env);
    int index = 0;
    if (device.rfind("cuda", 0) != 0) throw Error(NNC_ERR_BAD_DEVICE, "malformed device string '" + device + kForms);
    if (device.size() > 4) {
        const std::string num = device.substr(4);
        if (num.size() < 2 || num[0] != ':' || num.find_first_not_of("0123456789", 1) != std::string::npos ||
            num.size() > 6)
            throw Error(NNC_ERR_BAD_DEVICE, "malformed device string '" + device + kForms);
        index = std::atoi(num.c_str() + 1);
    }
    if (!cuda)
        throw Error(NNC_ERR_NO_DEVICE, "device '" + device + "' requested, but CUDA is not available (no GPU, or " +
                                           "this libtorch " + TORCH_VERSION + " was built without CUDA)");
    if (index >= count)
        throw Error(NNC_ERR_NO_DEVICE, "device '" + device + "' requested, but only " + std::to_string(count) +
                                           " CUDA device(s) are present");
    return {"cuda:" + std::to_string(index), "requested"};
}

void check_resident(const void *data, const c10::Device &device, const std::string &what) {
    if (data == nullptr) return;  // an empty array, or a NULL the descriptor checks report
    PointerAttribute get = device.is_cpu() ? pointer_attribute(true) : cuda_pointer_attribute();
    if (get == nullptr) {
        if (device.is_cpu()) return;  // no CUDA in this process: every pointer is host memory
        throw Error(NNC_ERR_NO_DEVICE, "cannot check where " + what +
                                           " lives: the CUDA driver libcuda.so.1 "
                                           "cannot be opened");
    }
    const int at = where(get, data);
    if (device.is_cpu()) {
        if (at >= 0)
            throw Error(NNC_ERR_ARGUMENT, what + " is in the memory of cuda:" + std::to_string(at) +
                                              ", but the model runs on the CPU: load it on that device, or pass "
                                              "host memory");
        return;
    }
    if (at == -2 || at == device.index()) return;
    if (at == -1)
        throw Error(NNC_ERR_ARGUMENT, what +
                                          " is host memory, but the on-device route takes arrays in the memory "
                                          "of the model's device " +
                                          device.str() +
                                          " (pass host arrays to nnc_model_forward / nn_forward without on_device)");
    throw Error(NNC_ERR_ARGUMENT,
                what + " is in the memory of cuda:" + std::to_string(at) + ", but the model runs on " + device.str());
}

void wait_for(const c10::Device &device) {
    if (device.is_cpu()) return;
    c10::impl::VirtualGuardImpl guard(device.type());
    guard.getStream(device).synchronize();
}

}  // namespace nnc
