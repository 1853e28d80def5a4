// The `train` settings table and strict number parsing (see options.hpp).

#include "apps/options.hpp"

#include "apps/cnn_arch.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

namespace tapegrad::app {

namespace {

/// A bound for people: 100000, 0.001, 1e-08 (never 309 digits).
std::string show(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

/// The given text, quoted and cut short if it is long.
std::string given(const std::string& text) {
    std::string t = text.size() > 60 ? text.substr(0, 57) + "..." : text;
    for (char& c : t)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return "'" + t + "'";
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
}

std::string fmt17(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
}

std::string join_sizes(const std::vector<std::size_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

// Limits. Generous, but each one keeps the arithmetic that uses it exact.
constexpr std::uint64_t max_epochs = 100000;
constexpr std::uint64_t max_width = 1000000000;  // units in one layer; memory is estimated separately
constexpr std::size_t max_layers = 100;
constexpr std::uint64_t max_batch = 1000000;
constexpr std::uint64_t max_warmup = 1000000000;

using setter = std::function<void(train_options&, const std::string&, const std::string&)>;
using getter = std::function<std::string(const train_options&)>;

train_setting whole(std::string key, std::string flag, bool saved, std::string help, std::uint64_t lo,
                    std::uint64_t hi, std::size_t train_options::*field) {
    help += " (" + std::to_string(lo) + " to " + std::to_string(hi) + ")";
    setter set = [=](train_options& o, const std::string& t, const std::string& label) {
        o.*field = static_cast<std::size_t>(parse_whole(label, t, lo, hi));
    };
    getter get = [=](const train_options& o) { return std::to_string(o.*field); };
    return {std::move(key), std::move(flag), saved, std::move(help), set, get};
}

train_setting real(std::string key, std::string flag, bool saved, std::string help, double lo, double hi,
                   bool lo_open, double train_options::*field) {
    help += lo_open ? " (greater than " + show(lo) + ", at most " + show(hi) + ")"
                    : " (" + show(lo) + " to " + show(hi) + ")";
    setter set = [=](train_options& o, const std::string& t, const std::string& label) {
        o.*field = parse_real(label, t, lo, hi, lo_open);
    };
    getter get = [=](const train_options& o) { return fmt17(o.*field); };
    return {std::move(key), std::move(flag), saved, std::move(help), set, get};
}

train_setting choice(std::string key, std::string flag, bool saved, std::string help,
                     std::vector<std::string> choices, std::string train_options::*field) {
    help += " (" + join(choices) + ")";
    setter set = [=](train_options& o, const std::string& t, const std::string& label) {
        o.*field = parse_choice(label, t, choices);
    };
    getter get = [=](const train_options& o) { return o.*field; };
    return {std::move(key), std::move(flag), saved, std::move(help), set, get};
}

std::vector<train_setting> make_table() {
    using o_t = train_options;
    std::vector<train_setting> t;
    t.push_back(choice("model", "--model", true,
                       "seed: softmax(W2 tanh(W1 x + b1) + b2) (the article's network); mlp: any layer sizes; "
                       "cnn: a convolutional network given by --arch",
                       {"seed", "mlp", "cnn"}, &o_t::model));
    t.push_back(whole("hidden", "--hidden", true, "seed: hidden units", 1, max_width, &o_t::hidden));
    t.push_back(choice("loss", "--loss", true,
                       "ce: cross-entropy on the logits; mse: mean squared error of the softmax output against "
                       "one-hot targets (the article)",
                       {"ce", "mse"}, &o_t::loss));
    t.push_back(choice("backward", "--backward", false,
                       "with --loss mse, the output layer's backward: tape (autodiff), hand (the corrected "
                       "hand-derived delta3 as a custom op, gradchecked before training) or article (the article's "
                       "delta3: the check refuses it and says which term is wrong)",
                       {"tape", "hand", "article"}, &o_t::backward));
    {
        setter set = [](train_options& o, const std::string& text, const std::string& label) {
            // The seed network ignores --layers; a checkpoint of one may store none.
            if (text.empty() && o.model == "seed") {
                o.layers.clear();
                return;
            }
            o.layers = parse_sizes(label, text, 1, max_width, max_layers);
        };
        getter get = [](const train_options& o) { return join_sizes(o.layers); };
        t.push_back({"layers", "--layers", true,
                     "mlp: hidden layer sizes, comma-separated (1 to " + std::to_string(max_layers) + " sizes of 1 to " +
                         std::to_string(max_width) + ")",
                     set, get});
    }
    t.push_back(choice("activation", "--activation", true, "mlp: hidden activation",
                       {"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"}, &o_t::activation));
    {
        setter set = [](train_options& o, const std::string& text, const std::string& label) {
            if (!text.empty()) (void)parse_arch(text, label);  // syntax here; shapes once the image size is known
            o.arch = text;
        };
        getter get = [](const train_options& o) { return o.arch; };
        t.push_back({"arch", "--arch", true,
                     "cnn: the layers, comma-separated (default " + std::string(default_cnn_arch) +
                         "; --layers, --hidden and --activation are for the other models): c<N>[k<K>][s<S>][p<P>] "
                         "conv, bn, relu/tanh/sigmoid/gelu/elu/leaky_relu/softplus, mp<K> max pool, ap<K> average "
                         "pool, gap, d<P> dropout, fc<N> linear (docs/trainer.md)",
                     set, get});
    }
    t.push_back(choice("optimizer", "--optimizer", true, "optimizer", {"sgd", "adam", "adamw", "rmsprop", "adagrad"},
                       &o_t::optimizer));
    t.push_back(real("lr", "--lr", true, "base learning rate", 0, 10, true, &o_t::lr));
    t.push_back(real("momentum", "--momentum", true, "sgd momentum", 0, 1, false, &o_t::momentum));
    t.push_back(real("weight_decay", "--weight-decay", true, "weight decay (decoupled for adamw)", 0, 10, false,
                     &o_t::weight_decay));
    t.push_back(choice("schedule", "--schedule", true,
                       "learning-rate schedule: step and exp decay once per epoch, cosine anneals every batch "
                       "(to 0 at the last one)",
                       {"none", "step", "cosine", "exp"}, &o_t::schedule));
    t.push_back(whole("warmup", "--warmup", true, "linear warm-up over this many steps (batches)", 0, max_warmup,
                      &o_t::warmup));
    t.push_back(whole("step_size", "--step-size", true, "step schedule: epochs between decays", 1, max_epochs,
                      &o_t::step_size));
    t.push_back(real("gamma", "--gamma", true, "step/exp schedule: decay factor", 0, 1, true, &o_t::gamma));
    t.push_back(real("clip", "--clip", true, "clip the global gradient norm (0: off)", 0, 1e6, false, &o_t::clip));
    t.push_back(whole("epochs", "--epochs", false, "total epochs (a resumed run continues up to this)", 1, max_epochs,
                      &o_t::epochs));
    t.push_back(whole("batch_size", "--batch-size", true,
                      "mini-batch size (default 128 for fashion, 32 for the small digits set)", 1, max_batch,
                      &o_t::batch_size));
    {
        setter set = [](train_options& o, const std::string& text, const std::string& label) {
            o.seed = parse_whole(label, text, 0, UINT64_MAX);
        };
        getter get = [](const train_options& o) { return std::to_string(o.seed); };
        t.push_back({"seed", "--seed", true, "seed of initialisation, split and shuffling (0 to 2^64-1)", set, get});
    }
    {
        setter set = [](train_options& o, const std::string& text, const std::string& label) {
            o.threads = static_cast<int>(parse_whole(label, text, 1, 256));
        };
        getter get = [](const train_options& o) { return std::to_string(o.threads); };
        t.push_back({"threads", "--threads", false, "BLAS threads (1 to 256)", set, get});
    }
    t.push_back(whole("bucket_kb", "--bucket-kb", false,
                      "--distributed: gradients are all-reduced in buckets of this many KiB", 1, 1048576,
                      &o_t::bucket_kb));
    t.push_back(choice("data", "--data", true, "data set: fashion (Fashion-MNIST) or digits (embedded UCI 8x8 digits)",
                       {"fashion", "digits"}, &o_t::data));
    t.push_back(real("val_fraction", "--val-fraction", true, "part of the training data held out for validation",
                     0.001, 0.9, false, &o_t::val_fraction));
    t.push_back(choice("normalization", "--normalize", true,
                       "input normalisation fitted on the training split: none, scale ([0,1]), global or feature "
                       "(mean/std per input)",
                       {"none", "scale", "global", "feature"}, &o_t::normalization));
    {
        setter set = [](train_options& o, const std::string& text, const std::string& label) {
            for (char c : text)
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                    throw option_error(label + " must be printable text (no control characters), got " + given(text));
            o.name = text;
        };
        getter get = [](const train_options& o) { return o.name; };
        t.push_back({"name", "--name", true, "run name (default <model>-<data>)", set, get});
    }
    t.push_back(whole("stop_after", "--stop-after", false,
                      "stop after this epoch as if interrupted (0: off; the schedule still spans --epochs)", 0,
                      max_epochs, &o_t::stop_after));
    {  // A flag on the command line (main.cpp lets it go without a value, which means on).
        setter set = [](train_options& o, const std::string& text, const std::string& label) {
            o.log_grad_norms = parse_choice(label, text.empty() ? "on" : text, {"on", "off"}) == "on";
        };
        getter get = [](const train_options& o) { return std::string(o.log_grad_norms ? "on" : "off"); };
        t.push_back({"log_grad_norms", "--log-grad-norms", false,
                     "add each parameter's gradient L2 norm (mean over the epoch's steps) to metrics.csv as "
                     "grad_norm_<name> columns, and plot them (no value or on, off)",
                     set, get});
    }
    t.push_back(choice("progress", "--progress", false, "auto: a live bar on a terminal, plain lines otherwise",
                       {"auto", "bar", "lines"}, &o_t::progress));
    return t;
}

}  // namespace

std::uint64_t parse_whole(const std::string& label, const std::string& text, std::uint64_t lo, std::uint64_t hi) {
    const std::string rule = label + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
    const auto r = std::from_chars(text.data(), end, v);
    if (!digits || r.ptr != end || r.ec == std::errc::result_out_of_range || v < lo || v > hi)
        throw option_error(rule + ", got " + given(text));
    return v;
}

double parse_real(const std::string& label, const std::string& text, double lo, double hi, bool lo_open) {
    const std::string rule = label + " must be a number " +
                             (lo_open ? "greater than " + show(lo) + " and at most " + show(hi)
                                      : "from " + show(lo) + " to " + show(hi));
    double v = 0;
    const char* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
        throw option_error(rule + ", got " + given(text));
    if (!std::isfinite(v)) throw option_error(rule + " (not NaN or infinity), got " + given(text));
    if (v > hi || v < lo || (lo_open && v == lo)) throw option_error(rule + ", got " + given(text));
    return v;
}

std::vector<std::size_t> parse_sizes(const std::string& label, const std::string& text, std::size_t lo,
                                     std::size_t hi, std::size_t max_count) {
    const std::string rule = label + " must be a comma-separated list of 1 to " + std::to_string(max_count) +
                             " whole numbers from " + std::to_string(lo) + " to " + std::to_string(hi);
    std::vector<std::size_t> out;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = text.find(',', start);
        const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        try {
            out.push_back(static_cast<std::size_t>(parse_whole(label, part, lo, hi)));
        } catch (const option_error&) {
            throw option_error(rule + ", got " + given(text) +
                               (text.empty() ? " (an empty list would train a linear model)" : ""));
        }
        if (out.size() > max_count) throw option_error(rule + ", got " + std::to_string(out.size()) + " or more sizes");
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

std::string parse_choice(const std::string& label, const std::string& text, const std::vector<std::string>& choices) {
    for (const auto& c : choices)
        if (text == c) return text;
    throw option_error(label + " must be one of " + join(choices) + ", got " + given(text));
}

const std::vector<train_setting>& train_settings() {
    static const std::vector<train_setting> table = make_table();
    return table;
}

void validate_train_options(const train_options& o) {
    train_options scratch = o;
    for (const auto& s : train_settings()) {
        if (s.key == "batch_size" && o.batch_size == 0) continue;  // 0: the data set's default
        s.set(scratch, s.get(o), s.flag);
    }
    if (!o.arch.empty() && o.model != "cnn")
        throw option_error("--arch is for --model cnn, got --model " + o.model +
                           ": add --model cnn, or use --layers for an mlp");
}

config_map to_config(const train_options& o) {
    config_map c;
    for (const auto& s : train_settings())
        if (s.saved) c[s.key] = s.get(o);
    return c;
}

void from_config(const config_map& c, train_options& o, const std::string& file,
                 const std::vector<std::string>& extra_keys) {
    std::set<std::string> known(extra_keys.begin(), extra_keys.end());
    for (const auto& s : train_settings()) {
        if (!s.saved) continue;
        known.insert(s.key);
        const std::string label = file + ": the checkpoint's setting '" + s.key + "'";
        auto it = c.find(s.key);
        if (it == c.end())
            throw option_error(file + ": the checkpoint has no setting '" + s.key +
                               "' (written by another program, or damaged)");
        s.set(o, it->second, label);
    }
    for (const auto& [k, v] : c)
        if (!known.count(k))
            throw option_error(file + ": the checkpoint has an unknown setting " + given(k) +
                               " (written by another version of tapegrad, or damaged)");
}

std::string config_text(const config_map& c) {
    std::string s;
    for (const auto& [k, v] : c) s += k + "=" + v + "\n";
    return s;
}

config_map parse_config_text(const std::string& s, const std::string& file) {
    config_map c;
    std::size_t start = 0, line_no = 0;
    while (start < s.size()) {
        ++line_no;
        std::size_t nl = s.find('\n', start);
        if (nl == std::string::npos) nl = s.size();
        const std::string line = s.substr(start, nl - start);
        start = nl + 1;
        const std::string where = file + ": line " + std::to_string(line_no) + " of the checkpoint's settings";
        for (char ch : line)
            if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
                throw option_error(where + " has a control character: " + given(line));
        const auto eq = line.find('=');
        if (eq == std::string::npos || eq == 0) throw option_error(where + " is not 'key=value': " + given(line));
        if (!c.emplace(line.substr(0, eq), line.substr(eq + 1)).second)
            throw option_error(where + " repeats the setting " + given(line.substr(0, eq)));
    }
    return c;
}

}  // namespace tapegrad::app
