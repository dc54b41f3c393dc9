// graph_check.cpp - may this model's forward pass be captured into a CUDA graph?
//
// A graph replays the kernels one capture recorded. That is the model's own
// computation only when nothing the host decided during the capture depends on the
// input's values: a branch or loop on a tensor's value, a raise under such a branch,
// a tensor's value read into a host number (int(), float(), .item(), a bool test) or
// an op whose output shape follows the data (nonzero, masked_select, unique) would
// all be frozen at what the capture saw. Shapes are fixed for a model (its input
// size never changes), so decisions taken on sizes, dtypes, devices and constants
// are safe. The check is conservative: it follows data dependencies through the
// inlined forward graph and flags any such decision it cannot prove shape-only.
#include "shim_internal.hpp"

#include <unordered_map>
#include <unordered_set>

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/lower_tuples.h>

namespace petmatte {
namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

bool is_tensor(const Value *v) { return v->type()->isSubtypeOf(*c10::TensorType::get()); }

// Ops that read only a tensor's metadata, never its elements.
bool reads_metadata_only(const Node *n) {
    static const std::unordered_set<std::string> kinds = {
        "aten::size",  "aten::dim",  "aten::numel", "aten::len",   "aten::is_floating_point", "prim::device",
        "prim::dtype", "prim::layout", "prim::is_cuda", "prim::shape", "aten::stride", "aten::is_contiguous",
    };
    return kinds.count(n->kind().toQualString()) != 0;
}

// Ops that turn a tensor's elements into a host value or a data-sized shape.
bool reads_values(const Node *n) {
    static const std::unordered_set<std::string> kinds = {
        "aten::Bool",    "aten::Int",           "aten::Float",     "aten::item",   "aten::ScalarImplicit",
        "aten::is_nonzero", "aten::tolist",     "aten::nonzero",   "aten::nonzero_numpy",
        "aten::masked_select", "aten::unique",  "aten::_unique",   "aten::_unique2", "aten::unique_consecutive",
        "aten::unique_dim", "aten::equal",      "aten::allclose",  "aten::__contains__",
    };
    return kinds.count(n->kind().toQualString()) != 0;
}

class Checker {
public:
    // Whether v's value follows the model's input data (as opposed to shapes,
    // constants and the module's own state).
    bool from_data(const Value *v) {
        auto it = memo_.find(v);
        if (it != memo_.end()) return it->second;
        memo_[v] = false; // a cycle (loop-carried value) adds nothing new
        const bool result = compute(v);
        memo_[v] = result;
        return result;
    }

    bool block_is_safe(const Block *block) {
        for (const Node *n : block->nodes()) {
            if (reads_values(n)) {
                for (const Value *in : n->inputs())
                    if (is_tensor(in) && from_data(in)) return false;
            }
            const std::string kind = n->kind().toQualString();
            if (kind == "prim::If" && from_data(n->input(0))) return false;
            if (kind == "prim::Loop") {
                for (size_t i = 0; i < 2 && i < n->inputs().size(); ++i)
                    if (from_data(n->input(i))) return false;
                const Block *body = n->blocks()[0];
                if (!body->outputs().empty() && from_data(body->outputs()[0])) return false;
            }
            for (const Block *inner : n->blocks())
                if (!block_is_safe(inner)) return false;
        }
        return true;
    }

private:
    bool compute(const Value *v) {
        const Node *n = v->node();
        const std::string kind = n->kind().toQualString();
        if (kind == "prim::Constant" || kind == "prim::GetAttr") return false; // the model's own state
        if (kind == "prim::Param") return is_tensor(v); // the input image; `self` is not data
        if (reads_metadata_only(n)) return false;
        if (kind == "prim::If" || kind == "prim::Loop") {
            // An output of a branch or loop: its condition and what each block yields.
            size_t index = 0;
            while (n->outputs()[index] != v) ++index;
            if (kind == "prim::If" && from_data(n->input(0))) return true;
            for (const Block *b : n->blocks()) {
                const size_t offset = kind == "prim::Loop" ? 1 : 0; // a loop body yields its condition first
                if (index + offset < b->outputs().size() && from_data(b->outputs()[index + offset])) return true;
            }
            if (kind == "prim::Loop" && index + 2 < n->inputs().size() && from_data(n->input(index + 2))) return true;
            return false;
        }
        for (const Value *in : n->inputs())
            if (from_data(in)) return true;
        return false;
    }

    std::unordered_map<const Value *, bool> memo_;
};

} // namespace

bool forward_is_graph_safe(const torch::jit::Module &module) {
    const auto method = module.find_method("forward");
    if (!method) return false;
    std::shared_ptr<torch::jit::Graph> graph = method->graph()->copy();
    torch::jit::Inline(*graph); // submodules' methods and called functions, as one graph
    // Traced code packs shapes and activations into one tuple and unpacks them again;
    // without the tuples each shape is followed to its own producer alone.
    try {
        torch::jit::LowerAllTuples(graph);
    } catch (const std::exception &) {
        torch::jit::LowerSimpleTuples(graph);
    }
    torch::jit::EliminateDeadCode(graph);
    Checker checker;
    return checker.block_is_safe(graph->block());
}

} // namespace petmatte
