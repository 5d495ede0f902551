// device_map.cpp: drives the bridge's auto_device (cbridge/src/device_map.cpp,
// torch-free) with an environment given on the command line, so the rank to
// GPU mapping is tested on machines without a GPU.
//   device_map VISIBLE_GPUS [NAME=VALUE ...]  ->  prints "device|reason"
// An error prints "error|STATUS|message" and exits 1.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "device_map.hpp"
#include "errors.hpp"

namespace {

std::map<std::string, std::string> table;

const char *lookup(const char *name) {
    auto it = table.find(name);
    return it == table.end() ? nullptr : it->second.c_str();
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s VISIBLE_GPUS [NAME=VALUE ...]\n", argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; ++i) {
        const std::string kv(argv[i]);
        const size_t eq = kv.find('=');
        table[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    try {
        const nnc::DeviceChoice c = nnc::auto_device(std::atoi(argv[1]), lookup);
        std::printf("%s|%s\n", c.device.c_str(), c.reason.c_str());
    } catch (const nnc::Error &e) {
        std::printf("error|%d|%s\n", e.status(), e.what());
        return 1;
    }
    return 0;
}
