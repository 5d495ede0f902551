// contract.cpp: reading the embedded contract and checking calls against it.
#include "contract.hpp"

#include <cmath>
#include <cstring>

#include "errors.hpp"
#include "json.hpp"
#include "layout.hpp"

namespace nnc {
namespace {

using json::Value;

[[noreturn]] void bad(const std::string &what) { throw Error(NNC_ERR_FORMAT, "invalid model contract: " + what); }

int64_t integer(const Value &v, const std::string &what) {
    if (!v.is(Value::Kind::Number) || v.number != std::floor(v.number)) bad(what + " must be an integer");
    return static_cast<int64_t>(v.number);
}

int input_index(const std::vector<IoSpec> &inputs, const Value &v, const std::string &what) {
    if (v.is(Value::Kind::String)) {
        for (size_t i = 0; i < inputs.size(); ++i)
            if (inputs[i].name == v.string) return static_cast<int>(i);
        bad(what + " names unknown input '" + v.string + "'");
    }
    int64_t i = integer(v, what);
    if (i < 0 || i >= static_cast<int64_t>(inputs.size())) bad(what + " input index out of range");
    return static_cast<int>(i);
}

/// [min, max] with max null for unbounded.
void range(const Value &r, int64_t &min, int64_t &max, const std::string &what) {
    if (!r.is(Value::Kind::Array) || r.array.size() != 2) bad(what + " must be [min, max]");
    min = integer(r.array[0], what);
    max = r.array[1].is(Value::Kind::Null) ? -1 : integer(r.array[1], what);
    if (min < 0 || (max >= 0 && max < min)) bad(what + " is empty or negative");
}

IoSpec io_spec(const Value &v, const std::vector<IoSpec> *inputs, const std::string &what) {
    if (!v.is(Value::Kind::Object)) bad(what + " must be an object");
    IoSpec io;
    const Value *name = v.find("name");
    if (!name || !name->is(Value::Kind::String) || name->string.empty()) bad(what + " needs a name");
    if (name->string.size() >= NNC_NAME_LEN) bad(what + " name is longer than " + std::to_string(NNC_NAME_LEN - 1));
    io.name = name->string;
    if (const Value *dt = v.find("dtype"); dt && !dt->is(Value::Kind::Null)) {
        io.dtype = dt->is(Value::Kind::String) ? dtype_from_name(dt->string) : 0;
        if (io.dtype == 0) bad(what + " '" + io.name + "' has an unsupported dtype");
    }
    const Value *shape = v.find("shape");
    if (!shape || !shape->is(Value::Kind::Array)) bad(what + " '" + io.name + "' needs a shape array");
    if (shape->array.size() + 1 > static_cast<size_t>(NNC_MAX_RANK)) bad(what + " '" + io.name + "' has too many dims");
    for (const Value &d : shape->array) {
        Dim dim;
        if (d.is(Value::Kind::Object)) {
            if (!inputs) bad(what + " '" + io.name + "': only outputs may derive dims from inputs");
            const Value *in = d.find("input");
            const Value *id = d.find("dim");
            if (!in || !id) bad(what + " '" + io.name + "': derived dim needs 'input' and 'dim'");
            dim.kind = Dim::Kind::FromInput;
            dim.input = input_index(*inputs, *in, what + " '" + io.name + "'");
            dim.input_dim = static_cast<int>(integer(*id, "dim"));
            const auto &src = (*inputs)[static_cast<size_t>(dim.input)].dims;
            if (dim.input_dim < 0 || dim.input_dim >= static_cast<int>(src.size()))
                bad(what + " '" + io.name + "': derived dim index out of range");
            if (const Value *off = d.find("offset")) dim.offset = integer(*off, "offset");
        } else {
            int64_t e = integer(d, what + " '" + io.name + "' shape entries");
            if (e < -1) bad(what + " '" + io.name + "' has a negative extent");
            if (e >= 0) {
                dim.kind = Dim::Kind::Fixed;
                dim.extent = e;
            }
        }
        io.dims.push_back(dim);
    }
    if (const Value *ranges = v.find("ranges"); ranges && !ranges->is(Value::Kind::Null)) {
        if (!ranges->is(Value::Kind::Array) || ranges->array.size() != io.dims.size())
            bad(what + " '" + io.name + "': 'ranges' needs one entry per dim");
        for (size_t d = 0; d < io.dims.size(); ++d) {
            const Value &r = ranges->array[d];
            if (r.is(Value::Kind::Null) || io.dims[d].kind != Dim::Kind::Any) continue;
            range(r, io.dims[d].min, io.dims[d].max, what + " '" + io.name + "' range");
        }
    }
    return io;
}

/// Resolve the expected per-sample extent of an output dim (-1 = any).
int64_t expected_extent(const Dim &d, const nnc_array *inputs) {
    if (d.kind == Dim::Kind::Fixed) return d.extent;
    if (d.kind == Dim::Kind::Any) return -1;
    return torch_sizes(inputs[d.input])[static_cast<size_t>(d.input_dim) + 1] + d.offset;
}

std::string label(const char *kind, const IoSpec &io, int i) {
    return std::string(kind) + " '" + io.name + "' (argument " + std::to_string(i + 1) + ")";
}

/// Check argument i (an input or output, `kind`) against its spec. Messages,
/// and the label naming the argument in them, are built only on failure.
void check_array(const IoSpec &io, const nnc_array &a, const char *kind, int i, int64_t batch,
                 const nnc_array *inputs) {
    if (!well_formed(a)) validate(a, label(kind, io, i));
    Dims want;
    want.push_back(batch);
    for (const Dim &d : io.dims) want.push_back(inputs ? expected_extent(d, inputs) : d.extent);
    auto what = [&] { return label(kind, io, i); };
    auto expect = [&] {
        return format_dims(want.data(), want.size(), a.order) + (a.order == NNC_ORDER_F ? " in Fortran order" : "");
    };
    if (io.dtype != 0 && a.dtype != io.dtype)
        throw Error(NNC_ERR_DTYPE, what() + ": expected " + dtype_name(io.dtype) + ", got " + dtype_name(a.dtype));
    if (a.rank != static_cast<int>(want.size()))
        throw Error(NNC_ERR_RANK, what() + ": expected rank " + std::to_string(want.size()) + " with shape " +
                                      expect() + ", got rank " + std::to_string(a.rank) + " with shape " +
                                      caller_shape(a));
    const Dims got = torch_sizes(a);
    for (size_t d = 0; d < want.size(); ++d)
        if (want[d] >= 0 && got[d] != want[d])
            throw Error(NNC_ERR_SHAPE, what() + ": expected shape " + expect() + ", got " + caller_shape(a));
    for (size_t d = 0; d < io.dims.size(); ++d) {  // extents a compiled package accepts
        const Dim &dim = io.dims[d];
        const int64_t e = got[d + 1];
        if (dim.kind != Dim::Kind::Any || (e >= dim.min && (dim.max < 0 || e <= dim.max))) continue;
        const int caller_dim = a.order == NNC_ORDER_F ? a.rank - 1 - static_cast<int>(d + 1) : static_cast<int>(d + 1);
        throw Error(NNC_ERR_SHAPE, what() + ": extent " + std::to_string(e) + " of dimension " +
                                       std::to_string(caller_dim + (a.order == NNC_ORDER_F ? 1 : 0)) +
                                       " is outside the range the model was compiled for, " + std::to_string(dim.min) +
                                       " to " + (dim.max < 0 ? "unbounded" : std::to_string(dim.max)) +
                                       "; shape given " + caller_shape(a));
    }
}

/// Whether output dim `b` always has the extent of dim `d` of input `i` (whose spec is `a`).
bool same_extent(const Dim &a, const Dim &b, int i, int d) {
    if (b.kind == Dim::Kind::FromInput) return b.input == i && b.input_dim == d && b.offset == 0;
    return a.kind == b.kind && a.extent == b.extent;
}

/// One entry of "state": {"input": NAME, "output": NAME, ...}, the two alike in dtype and shape.
std::pair<int, int> state_pair(const Contract &c, const Value &v) {
    if (!v.is(Value::Kind::Object)) bad("each 'state' entry must be an object");
    const Value *in = v.find("input");
    const Value *out = v.find("output");
    if (!in || !out || !in->is(Value::Kind::String) || !out->is(Value::Kind::String))
        bad("each 'state' entry needs 'input' and 'output' names");
    auto find = [](const std::vector<IoSpec> &ios, const std::string &name) {
        for (size_t i = 0; i < ios.size(); ++i)
            if (ios[i].name == name) return static_cast<int>(i);
        return -1;
    };
    const int i = find(c.inputs, in->string);
    const int o = find(c.outputs, out->string);
    if (i < 0 || o < 0)
        bad("state pair '" + in->string + "' -> '" + out->string + "' names an unknown " +
            (i < 0 ? "input" : "output"));
    const IoSpec &a = c.inputs[static_cast<size_t>(i)];
    const IoSpec &b = c.outputs[static_cast<size_t>(o)];
    bool alike = a.dtype == b.dtype && a.dims.size() == b.dims.size();
    for (size_t d = 0; alike && d < a.dims.size(); ++d)
        alike = same_extent(a.dims[d], b.dims[d], i, static_cast<int>(d));
    if (!alike) bad("state input '" + a.name + "' and output '" + b.name + "' differ in dtype or shape");
    return {i, o};
}

}  // namespace

Contract parse_contract(const std::string &text) {
    Contract c;
    c.json = text;
    Value doc = json::parse(text);
    if (!doc.is(Value::Kind::Object)) bad("the document must be an object");
    const Value *schema = doc.find("schema");
    if (!schema || !schema->is(Value::Kind::String) || schema->string.rfind("pyclosure.contract/", 0) != 0)
        bad("missing or unknown 'schema'");
    const Value *ins = doc.find("inputs");
    const Value *outs = doc.find("outputs");
    if (!ins || !ins->is(Value::Kind::Array) || !outs || !outs->is(Value::Kind::Array))
        bad("'inputs' and 'outputs' must be arrays");
    for (const Value &v : ins->array) c.inputs.push_back(io_spec(v, nullptr, "input"));
    for (const Value &v : outs->array) c.outputs.push_back(io_spec(v, &c.inputs, "output"));
    if (const Value *b = doc.find("batch_range"); b && !b->is(Value::Kind::Null))
        range(*b, c.batch_min, c.batch_max, "batch_range");
    if (const Value *st = doc.find("state"); st && !st->is(Value::Kind::Null)) {
        if (!st->is(Value::Kind::Array)) bad("'state' must be an array");
        for (const Value &v : st->array) c.state.push_back(state_pair(c, v));
    }
    return c;
}

void check_call(const Contract &c, int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs) {
    auto names = [](const std::vector<IoSpec> &v) {
        std::string s;
        for (const auto &io : v) s += (s.empty() ? "" : ", ") + io.name;
        return s;
    };
    if (num_inputs != static_cast<int>(c.inputs.size()))
        throw Error(NNC_ERR_NARGS, "expected " + std::to_string(c.inputs.size()) + " input(s) (" + names(c.inputs) +
                                       "), got " + std::to_string(num_inputs));
    if (num_outputs != static_cast<int>(c.outputs.size()))
        throw Error(NNC_ERR_NARGS, "expected " + std::to_string(c.outputs.size()) + " output(s) (" + names(c.outputs) +
                                       "), got " + std::to_string(num_outputs));
    int64_t batch = -1;
    for (int i = 0; i < num_inputs; ++i) {
        const IoSpec &io = c.inputs[static_cast<size_t>(i)];
        check_array(io, inputs[i], "input", i, batch, nullptr);
        const int64_t b = torch_sizes(inputs[i])[0];
        if (batch >= 0 && b != batch)
            throw Error(NNC_ERR_SHAPE, label("input", io, i) + ": batch size " + std::to_string(b) +
                                           " differs from input '" + c.inputs[0].name + "' (" + std::to_string(batch) +
                                           ")");
        batch = b;
    }
    if (batch > 0 && (batch < c.batch_min || (c.batch_max >= 0 && batch > c.batch_max)))
        throw Error(NNC_ERR_SHAPE, "batch size " + std::to_string(batch) +
                                       " is outside the range the model was "
                                       "compiled for, " +
                                       std::to_string(c.batch_min) + " to " +
                                       (c.batch_max < 0 ? "unbounded" : std::to_string(c.batch_max)));
    for (int i = 0; i < num_outputs; ++i)
        check_array(c.outputs[static_cast<size_t>(i)], outputs[i], "output", i, batch, inputs);
}

void describe(const IoSpec &io, nnc_io_info *info) {
    std::memset(info, 0, sizeof(*info));
    std::strncpy(info->name, io.name.c_str(), NNC_NAME_LEN - 1);
    info->dtype = io.dtype;
    info->rank = static_cast<int>(io.dims.size());
    for (size_t d = 0; d < io.dims.size(); ++d)
        info->shape[d] = io.dims[d].kind == Dim::Kind::Fixed ? io.dims[d].extent : -1;
}

}  // namespace nnc
