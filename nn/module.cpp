// nn::module: registration, recursive walks with dotted names, modes, printout.

#include "nn/module.hpp"

#include <sstream>

#include "autograd/ops.hpp"

namespace tapegrad::nn {

namespace {

// "1,234,567": parameter counts are easier to read with separators.
std::string grouped(std::size_t n) {
    std::string s = std::to_string(n);
    for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(std::size_t(i), ",");
    return s;
}

}  // namespace

template <class T> void module<T>::check_name(const std::string& name, const char* what) const {
    if (name.empty()) throw std::invalid_argument(std::string(what) + ": empty name");
    if (name.find('.') != std::string::npos)
        throw std::invalid_argument(std::string(what) + ": name '" + name +
                                    "' contains a '.', which separates nested names; choose another");
    auto taken = [&](const auto& list) {
        for (const auto& e : list)
            if (e.first == name) return true;
        return false;
    };
    if (taken(params_) || taken(buffers_) || taken(children_))
        throw std::invalid_argument(std::string(what) + ": name '" + name + "' is already registered in " +
                                    type_name());
}

template <class T> tensor<T>& module<T>::register_parameter(std::string name, tensor<T> t) {
    check_name(name, "register_parameter");
    if (!t.defined() || !t.is_leaf())
        throw std::invalid_argument("register_parameter: '" + name +
                                    "' must be a defined leaf tensor (use detach() on an op result)");
    t.set_requires_grad(true);
    params_.emplace_back(std::move(name), std::move(t));
    return params_.back().second;
}

template <class T> tensor<T>& module<T>::register_buffer(std::string name, tensor<T> t) {
    check_name(name, "register_buffer");
    if (!t.defined() || !t.is_leaf())
        throw std::invalid_argument("register_buffer: '" + name + "' must be a defined leaf tensor");
    t.set_requires_grad(false);
    buffers_.emplace_back(std::move(name), std::move(t));
    return buffers_.back().second;
}

namespace {
/// Every entry of member(module) (params_ or buffers_) of `root` and its descendants,
/// named by dotted path, in registration order. Iterative over an explicit
/// stack of (module, prefix) keeps deep models safe.
template <class T, class Get>
std::vector<std::pair<std::string, tensor<T>>> collect_named(const module<T>* root, Get member) {
    std::vector<std::pair<std::string, tensor<T>>> out;
    std::vector<std::pair<const module<T>*, std::string>> todo{{root, ""}};
    while (!todo.empty()) {
        auto [m, prefix] = todo.back();
        todo.pop_back();
        for (const auto& [name, t] : member(*m)) out.emplace_back(prefix + name, t);
        const auto& kids = m->children();
        for (auto it = kids.rbegin(); it != kids.rend(); ++it) todo.emplace_back(it->second.get(), prefix + it->first + ".");
    }
    return out;
}
}  // namespace

template <class T> std::vector<std::pair<std::string, tensor<T>>> module<T>::named_parameters() const {
    return collect_named<T>(this, [](const module<T>& m) -> const auto& { return m.params_; });
}

template <class T> std::vector<std::pair<std::string, tensor<T>>> module<T>::named_buffers() const {
    return collect_named<T>(this, [](const module<T>& m) -> const auto& { return m.buffers_; });
}

template <class T> tensor<T>& module<T>::parameter(const std::string& dotted_name) {
    module<T>* m = this;
    std::string rest = dotted_name;
    for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
        const std::string head = rest.substr(0, dot);
        module<T>* next = nullptr;
        for (auto& c : m->children_)
            if (c.first == head) next = c.second.get();
        m = next;
        if (!m) break;
        rest = rest.substr(dot + 1);
    }
    if (m) {
        for (auto& p : m->params_)
            if (p.first == rest) return p.second;
        for (auto& b : m->buffers_)
            if (b.first == rest) return b.second;
    }
    std::string valid;
    for (auto& [n, t] : named_parameters()) valid += (valid.empty() ? "" : ", ") + n;
    for (auto& [n, t] : named_buffers()) valid += (valid.empty() ? "" : ", ") + n;
    throw std::out_of_range(type_name() + ": no parameter or buffer named '" + dotted_name + "'; valid names: " + valid);
}

template <class T> tensor<T> module<T>::forward_relu(const tensor<T>& x) { return relu(forward(x)); }

template <class T> std::vector<tensor<T>> module<T>::parameters() const {
    std::vector<tensor<T>> out;
    for (auto& [name, t] : named_parameters()) out.push_back(t);
    return out;
}

template <class T> void module<T>::zero_grad() {
    for (auto& t : parameters()) t.zero_grad();
}

template <class T> void module<T>::train(bool on) {
    bool changed = training_ != on;
    training_ = on;
    if (changed) on_train_changed();
    for (auto& c : children_) c.second->train(on);
}

template <class T> std::size_t module<T>::parameter_count() const {
    std::size_t n = 0;
    for (auto& [name, t] : named_parameters()) n += t.size();
    return n;
}

template <class T> std::string module<T>::type_name() const { return "Module"; }

template <class T> void module<T>::summary_lines(std::string& out, const std::string& label, int depth) const {
    std::string line(std::size_t(depth) * 2, ' ');
    if (!label.empty()) line += "(" + label + "): ";
    line += type_name();
    std::size_t own = 0;
    std::string shapes;
    for (const auto& [name, t] : params_) {
        own += t.size();
        shapes += (shapes.empty() ? "" : ", ") + name + " " + shape_str(t.shape());
    }
    for (const auto& [name, t] : buffers_)
        shapes += (shapes.empty() ? "" : ", ") + name + " " + shape_str(t.shape()) + " (buffer)";
    if (!shapes.empty()) line += "  [" + shapes + "]";
    if (own) line += "  " + grouped(own) + " params";
    out += line + "\n";
    for (const auto& [name, c] : children_) c->summary_lines(out, name, depth + 1);
}

template <class T> std::string module<T>::summary() const {
    std::string out;
    summary_lines(out, "", 0);
    out += "Total parameters: " + grouped(parameter_count()) + (training_ ? " (training mode)" : " (eval mode)") + "\n";
    return out;
}

template class module<float>;
template class module<double>;

}  // namespace tapegrad::nn
