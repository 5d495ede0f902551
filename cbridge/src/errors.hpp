// errors.hpp: typed bridge errors, the per-thread last-error message, and the
// guard that turns every exception into a status at the C boundary.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "nn_closure.h"

namespace nnc {

/// An error with the status it maps to at the boundary.
class Error : public std::exception {
public:
    Error(int status, std::string message) : status_(status), message_(std::move(message)) {}
    int status() const noexcept { return status_; }
    const char *what() const noexcept override { return message_.c_str(); }

private:
    int status_;
    std::string message_;
};

/// This thread's last message.
std::string &last_error();

/// Run f; map anything it throws to a status and this thread's message.
template <class F> int guarded(F &&f) noexcept {
    try {
        try {
            f();
            last_error().clear();
            return NNC_OK;
        } catch (const Error &e) {
            last_error() = e.what();
            return e.status();
        } catch (const std::bad_alloc &) {
            last_error() = "out of memory";
            return NNC_ERR_MEMORY;
        } catch (const std::exception &e) {
            last_error() = std::string("internal error: ") + e.what();
            return NNC_ERR_INTERNAL;
        } catch (...) {
            last_error() = "internal error: unknown exception";
            return NNC_ERR_INTERNAL;
        }
    } catch (...) {
        // Even setting the message failed (out of memory): still no throw.
        return NNC_ERR_MEMORY;
    }
}

/// Throw NNC_ERR_ARGUMENT naming a NULL argument.
inline void require_nonnull(const void *p, const char *what) {
    if (p == nullptr) throw Error(NNC_ERR_ARGUMENT, std::string(what) + " is NULL");
}

}  // namespace nnc
