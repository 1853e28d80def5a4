// The trainer's one-file checkpoint (train_checkpoint.hpp).

#include "apps/train_checkpoint.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/durable_io.hpp"
#include "apps/options.hpp"
#include "nn/checkpoint.hpp"

namespace fs = std::filesystem;

namespace tapegrad::app {

namespace {

constexpr const char* config_key = "trainer.config";
constexpr const char* mean_key = "trainer.norm_mean";
constexpr const char* scale_key = "trainer.norm_scale";
constexpr const char* optimizer_prefix = "optimizer.";
constexpr const char* format_version = "1";

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::string fmt17(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
}

std::string fmt(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

/// Position and bookkeeping keys stored beside the settings.
const std::vector<std::string>& state_keys() {
    static const std::vector<std::string> keys = {"format",     "epochs_done",   "step_in_epoch", "loss_sum",
                                                  "features",   "classes",       "last_train_loss",
                                                  "last_val_loss", "last_val_acc", "last_lr"};
    return keys;
}

xt::xarray<float> float_array(const std::vector<float>& v) {
    xt::xarray<float> a = xt::xarray<float>::from_shape({v.size()});
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

npz::entry text_entry(const std::string& name, const std::string& s) {
    xt::xarray<float> a = xt::xarray<float>::from_shape({s.size()});
    for (std::size_t i = 0; i < s.size(); ++i) a(i) = static_cast<float>(static_cast<unsigned char>(s[i]));
    return npz::make_entry(name, a);
}

/// Text stored one byte per float: every element must be a whole number 0..255.
std::string entry_text(const npz::entry& e, const std::string& path) {
    const xt::xarray<float> a = npz::to_array<float>(e, path);
    if (a.dimension() != 1)
        throw std::runtime_error(path + ": array '" + e.name + "' must be 1-D text bytes, but has shape " +
                                 shape_str(e.shape));
    std::string s;
    s.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        const float v = a(i);
        if (!(v >= 0 && v <= 255) || v != std::floor(v))
            throw std::runtime_error(path + ": array '" + e.name + "' holds text bytes, but element " +
                                     std::to_string(i) + " is " + fmt(v) + " (not a whole number from 0 to 255)");
        s += static_cast<char>(static_cast<unsigned char>(v));
    }
    return s;
}

std::vector<float> float_values(const npz::entry& e, const std::string& path, const std::string& what) {
    const xt::xarray<float> a = npz::to_array<float>(e, path);
    if (a.dimension() != 1)
        throw std::runtime_error(path + ": " + what + " '" + e.name + "' must be 1-D, but has shape " +
                                 shape_str(e.shape));
    std::vector<float> v(a.begin(), a.end());
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]))
            throw std::runtime_error(path + ": " + what + " '" + e.name + "' has " + fmt(v[i]) + " at element " +
                                     std::to_string(i) + " (it must be finite)");
    return v;
}

}  // namespace

void write_checkpoint(const std::string& path, const nn::module<float>& model, const optim::optimizer<float>& opt,
                      const train_options& o, const data::normalizer& norm, const train_state& st) {
    fault_point("checkpoint:begin", st.epochs_done);
    std::vector<npz::entry> entries = nn::state_entries(model);
    for (auto& e : opt.state_entries()) {
        e.name = optimizer_prefix + e.name;
        entries.push_back(std::move(e));
    }
    config_map c = to_config(o);
    c["format"] = format_version;
    c["epochs_done"] = std::to_string(st.epochs_done);
    c["step_in_epoch"] = std::to_string(st.step_in_epoch);
    c["loss_sum"] = fmt17(st.loss_sum);
    c["features"] = std::to_string(st.features);
    c["classes"] = std::to_string(st.classes);
    c["last_train_loss"] = fmt17(st.last.train_loss);
    c["last_val_loss"] = fmt17(st.last.val_loss);
    c["last_val_acc"] = fmt17(st.last.val_acc);
    c["last_lr"] = fmt17(st.last.lr);
    entries.push_back(text_entry(config_key, config_text(c)));
    entries.push_back(npz::make_entry(mean_key, float_array(norm.mean())));
    entries.push_back(npz::make_entry(scale_key, float_array(norm.scale())));

    const std::string partial = path + ".partial";
    const scratch_files_scope scratch(partial, partial + ".tmp");  // npz::write goes through partial.tmp
    try {
        npz::write(partial, entries);  // checks every write and the close
        fault_point("checkpoint:written", st.epochs_done);
        commit_file(partial, path, "checkpoint", st.epochs_done);
    } catch (const not_durable_error& e) {
        throw write_error(path + ": the checkpoint of epoch " + std::to_string(st.epochs_done) +
                          " is in place, but syncing its directory failed (" + e.what() +
                          "), so a power loss may undo it: free some space and continue with --resume");
    } catch (const std::exception& e) {
        std::remove(partial.c_str());
        throw write_error(path + ": the checkpoint was not written (" + e.what() +
                          "); the previous checkpoint, if any, is intact: free some space and continue with --resume");
    }
    // Files of the older three-file format beside it are stale now.
    std::string stem = path;
    if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npz") == 0) stem.resize(stem.size() - 4);
    std::error_code ec;
    fs::remove(stem + ".optim.npz", ec);
    fs::remove(stem + ".meta.npz", ec);
}

namespace {

// Both entry points (a file, or its bytes in memory) check the arrays here.
loaded_checkpoint checkpoint_from(std::vector<npz::entry> all, const std::string& path) {
    loaded_checkpoint c;
    c.path = path;
    const npz::entry* config = nullptr;
    const npz::entry *mean = nullptr, *scale = nullptr;
    for (auto& e : all) {
        if (e.name == config_key) config = &e;
        else if (e.name == mean_key) mean = &e;
        else if (e.name == scale_key) scale = &e;
    }
    if (!config) {
        std::string stem = path;
        if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npz") == 0) stem.resize(stem.size() - 4);
        if (fs::exists(stem + ".meta.npz"))
            throw std::runtime_error(path + ": a checkpoint of the older three-file format (" + stem +
                                     ".optim.npz and .meta.npz beside it), whose files cannot be checked against "
                                     "each other; `tapegrad train` again to get a one-file checkpoint");
        throw std::runtime_error(path + ": not a tapegrad training checkpoint: it has no '" + config_key +
                                 "' array (`tapegrad train` writes checkpoint.npz with the weights, the optimizer "
                                 "state and the run's settings in one file)");
    }
    config_map cfg = parse_config_text(entry_text(*config, path), path);
    cfg.emplace("arch", "");  // checkpoints from before --model cnn have no arch
    from_config(cfg, c.options, path, state_keys());
    auto need = [&](const std::string& key) -> const std::string& {
        auto it = cfg.find(key);
        if (it == cfg.end())
            throw option_error(path + ": the checkpoint has no setting '" + key + "' (written by another program, or damaged)");
        return it->second;
    };
    auto label = [&](const std::string& key) { return path + ": the checkpoint's setting '" + key + "'"; };
    parse_whole(label("format"), need("format"), 1, 1);
    train_state& st = c.state;
    st.epochs_done = parse_whole(label("epochs_done"), need("epochs_done"), 0, 100000);
    st.step_in_epoch = parse_whole(label("step_in_epoch"), need("step_in_epoch"), 0, 1000000000000ull);
    st.loss_sum = parse_real(label("loss_sum"), need("loss_sum"), 0, 1e300);
    st.features = parse_whole(label("features"), need("features"), 1, 1000000000);
    st.classes = parse_whole(label("classes"), need("classes"), 1, 1000000);
    st.last.epoch = st.epochs_done;
    st.last.train_loss = parse_real(label("last_train_loss"), need("last_train_loss"), 0, 1e300);
    st.last.val_loss = parse_real(label("last_val_loss"), need("last_val_loss"), 0, 1e300);
    st.last.val_acc = parse_real(label("last_val_acc"), need("last_val_acc"), 0, 1);
    st.last.lr = parse_real(label("last_lr"), need("last_lr"), 0, 10);

    // Normalisation: sizes follow its kind, values finite, scales positive.
    if (!mean || !scale) throw std::runtime_error(path + ": no array '" + std::string(mean ? scale_key : mean_key) + "'");
    const data::normalization kind = data::parse_normalization(c.options.normalization);
    std::vector<float> m = float_values(*mean, path, "normalisation array");
    std::vector<float> s = float_values(*scale, path, "normalisation array");
    const std::size_t want = kind == data::normalization::none ? 0
                             : kind == data::normalization::per_feature ? st.features
                                                                        : 1;
    if (m.size() != want || s.size() != want)
        throw std::runtime_error(path + ": normalisation '" + c.options.normalization + "' over " +
                                 std::to_string(st.features) + " features needs " + std::to_string(want) +
                                 " values in '" + mean_key + "' and '" + scale_key + "', the file has " +
                                 std::to_string(m.size()) + " and " + std::to_string(s.size()));
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!(s[i] > 0))
            throw std::runtime_error(path + ": '" + std::string(scale_key) + "' has " + fmt(s[i]) + " at element " +
                                     std::to_string(i) + " (a divisor must be greater than 0)");
    c.norm = data::normalizer(kind, std::move(m), std::move(s));

    for (auto& e : all) {
        if (starts_with(e.name, "trainer.")) {
            if (&e != config && &e != mean && &e != scale)
                throw std::runtime_error(path + ": unknown trainer array '" + e.name + "'");
            continue;
        }
        if (starts_with(e.name, optimizer_prefix)) {
            e.name = e.name.substr(std::string(optimizer_prefix).size());
            c.optimizer.push_back(std::move(e));
            continue;
        }
        const xt::xarray<float> w = npz::to_array<float>(e, path);
        for (std::size_t i = 0; i < w.size(); ++i)
            if (!std::isfinite(w.data()[i]))
                throw std::runtime_error(path + ": weight '" + e.name + "' has " + fmt(w.data()[i]) + " at element " +
                                         std::to_string(i) + " (weights must be finite: the run diverged, or the "
                                         "file is damaged)");
        c.model.push_back(std::move(e));
    }
    if (c.model.empty()) throw std::runtime_error(path + ": the checkpoint holds no weights");
    if (c.optimizer.empty()) throw std::runtime_error(path + ": the checkpoint holds no optimizer state");
    return c;
}

}  // namespace

loaded_checkpoint read_checkpoint(const std::string& path) { return checkpoint_from(npz::read(path), path); }

loaded_checkpoint read_checkpoint(const unsigned char* data, std::size_t size, const std::string& name) {
    return checkpoint_from(npz::read(data, size, name), name);
}

void restore(const loaded_checkpoint& c, nn::module<float>& model, optim::optimizer<float>& opt,
             std::size_t steps_per_epoch) {
    const train_state& st = c.state;
    if (st.step_in_epoch >= steps_per_epoch)
        throw std::runtime_error(c.path + ": the checkpoint is at step " + std::to_string(st.step_in_epoch) +
                                 " of an epoch, but an epoch has " + std::to_string(steps_per_epoch) +
                                 " steps with its data and batch size");
    nn::load_state(model, c.model, c.path);
    opt.load_state(c.optimizer, c.path);
    const std::int64_t expected =
        static_cast<std::int64_t>(st.epochs_done * steps_per_epoch + st.step_in_epoch);
    for (std::size_t i = 0; i < opt.params().size(); ++i) {
        if (opt.steps(i) != expected)
            throw std::runtime_error(
                c.path + ": the optimizer state has taken " + std::to_string(opt.steps(i)) + " steps (parameter " +
                std::to_string(i) + ") but the checkpoint is after epoch " + std::to_string(st.epochs_done) +
                " and step " + std::to_string(st.step_in_epoch) + " of the next (" + std::to_string(expected) +
                " steps at " + std::to_string(steps_per_epoch) +
                " per epoch): its parts come from different points of a run; resume from a checkpoint that "
                "`tapegrad train` wrote");
    }
}

std::vector<epoch_record> metrics_up_to(const loaded_checkpoint& c, const std::string& csv_path,
                                        std::string& warning) {
    warning.clear();
    if (!fs::exists(csv_path)) {
        if (c.state.epochs_done > 0)
            warning = "no " + csv_path + " beside " + c.path + ": the new metrics.csv starts at epoch " +
                      std::to_string(c.state.epochs_done + 1);
        return {};
    }
    std::vector<epoch_record> rows;
    for (const auto& r : read_metrics_csv(csv_path))
        if (r.epoch <= c.state.epochs_done) rows.push_back(r);
    const std::string advice = ": move " + csv_path + " away to resume without the earlier epochs' metrics";
    for (std::size_t i = 0; i < rows.size(); ++i)
        if (rows[i].epoch != i + 1)
            throw std::runtime_error(csv_path + ": row " + std::to_string(i + 1) + " is epoch " +
                                     std::to_string(rows[i].epoch) + ", expected " + std::to_string(i + 1) + advice);
    if (rows.size() != c.state.epochs_done)
        throw std::runtime_error(csv_path + " has rows for " + std::to_string(rows.size()) + " epoch(s) but " + c.path +
                                 " is after epoch " + std::to_string(c.state.epochs_done) + advice);
    if (!rows.empty()) {
        const epoch_record& r = rows.back();
        const epoch_record& k = c.state.last;
        auto check = [&](const char* field, double csv, double ckpt) {
            if (csv != ckpt)
                throw std::runtime_error(csv_path + ": epoch " + std::to_string(r.epoch) + " has " + field + " " +
                                         fmt17(csv) + " but " + c.path + " has " + fmt17(ckpt) +
                                         ": the metrics and the checkpoint come from different runs" + advice);
        };
        check("train_loss", r.train_loss, k.train_loss);
        check("val_loss", r.val_loss, k.val_loss);
        check("val_acc", r.val_acc, k.val_acc);
        check("lr", r.lr, k.lr);
    }
    return rows;
}

}  // namespace tapegrad::app
