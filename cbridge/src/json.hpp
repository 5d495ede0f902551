// json.hpp: a small, strict JSON reader for the embedded model contract.
// Only what the contract needs: objects, arrays, strings, numbers, booleans,
// null. Errors throw nnc::Error(NNC_ERR_FORMAT) with the byte offset.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace nnc::json {

struct Value {
    enum class Kind {
        Null,
        Bool,
        Number,
        String,
        Array,
        Object
    };
    Kind kind = Kind::Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<Value> array;
    std::map<std::string, Value> object;

    bool is(Kind k) const { return kind == k; }
    /// Member of an object, or nullptr when absent (or not an object).
    const Value *find(const std::string &key) const;
};

/// Parse a whole document; trailing non-space text is an error.
Value parse(const std::string &text);

}  // namespace nnc::json

namespace nnc::json {

/// A JSON string literal (quoted, escaped) for writing documents.
std::string quote(const std::string &s);

}  // namespace nnc::json
