// device.hpp: devices as the bridge sees them: parsing and resolving a device
// string, where a caller's pointer lives (CUDA driver pointer attributes, read
// without CUDA headers), and waiting for the model's work on a device.
#pragma once

#include <string>

#include <c10/core/Device.h>

#include "device_map.hpp"

namespace nnc {

/// Parse a device string ("cpu", "cuda", "cuda:N", "auto") and check it is
/// usable; returns its canonical form and why it was chosen.
DeviceChoice resolve_device(const std::string &device);

/// For the on-device route: throw NNC_ERR_ARGUMENT unless `data` can be used in
/// place on `device`: memory of that CUDA device (or CUDA managed memory) for a
/// CUDA model; for a CPU model, not CUDA device memory (checked when the CUDA
/// driver is already loaded in the process; host memory is assumed otherwise).
/// `what` names the array in the message.
void check_resident(const void *data, const c10::Device &device, const std::string &what);

/// Block until the work queued on torch's current stream of `device` is done
/// (nothing for the CPU, whose work is done when it returns).
void wait_for(const c10::Device &device);

}  // namespace nnc
