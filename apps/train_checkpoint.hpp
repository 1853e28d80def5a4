#pragma once
// The trainer's checkpoint: ONE .npz holding everything a resume needs, so it
// commits with one rename (apps/durable_io): a crash, a Ctrl-C or a full disk
// leaves the previous checkpoint or the new one, never a mix.
//
//   0.weight, 0.bias, ...   the weights under their parameter names (numpy.load
//                           shows them; nn::load_state reads them)
//   optimizer.<name>...     optim::optimizer::state_entries (lr, steps, moments)
//   trainer.config          the run's settings and position as "key=value" text
//                           (one byte per float32 element)
//   trainer.norm_mean/_scale the training split's normalisation statistics
//
// Reading checks every field as strictly as the command line checks options,
// and throws naming the file and the field.

#include <cstddef>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/report.hpp"
#include "data/dataset.hpp"
#include "nn/module.hpp"
#include "io/npz.hpp"
#include "optim/optimizer.hpp"

namespace tapegrad::app {

/// Where a run stands when the trainer commits it.
struct train_state {
    std::size_t epochs_done = 0;    ///< complete epochs
    std::size_t step_in_epoch = 0;  ///< steps of the next epoch already taken (an interrupted epoch)
    double loss_sum = 0;            ///< their summed training loss
    std::size_t features = 0;       ///< model inputs
    std::size_t classes = 0;        ///< model outputs
    epoch_record last;              ///< metrics of epoch `epochs_done` (seconds not kept), to match metrics.csv
};

/// A checkpoint read back and checked.
struct loaded_checkpoint {
    std::string path;                   ///< the file
    train_options options;              ///< its saved settings, validated like the command line's
    train_state state;                  ///< its position
    data::normalizer norm;              ///< its normalisation (sizes and values checked)
    std::vector<npz::entry> model;      ///< weights by parameter name (all finite)
    std::vector<npz::entry> optimizer;  ///< optimizer state, named as optimizer::state_entries names it
};

/// Write the checkpoint at `path`: the file is built aside (`path`.partial),
/// fsync'ed and renamed into place, then its directory fsync'ed. Fault points
/// "checkpoint:begin", ":written", ":synced", ":renamed", ":dir-synced" with the
/// count `st.epochs_done`. Throws write_error / npz::npz_error naming the file;
/// the previous checkpoint is then intact.
void write_checkpoint(const std::string& path, const nn::module<float>& model, const optim::optimizer<float>& opt,
                      const train_options& o, const data::normalizer& norm, const train_state& st);

/// Read and check a checkpoint written by write_checkpoint. Throws naming the
/// file and the field: npz::npz_error for the file itself, option_error for a
/// setting, std::runtime_error for anything else (a file of the older
/// three-file format is refused with what to do).
loaded_checkpoint read_checkpoint(const std::string& path);

/// read_checkpoint on a checkpoint file's bytes already in memory; `name`
/// stands for the file in error messages.
loaded_checkpoint read_checkpoint(const unsigned char* data, std::size_t size, const std::string& name);

/// Load the checkpoint's weights and optimizer state into a freshly built
/// model and optimizer (everything checked before anything is assigned), then
/// check that the optimizer's step counts are those of the checkpoint's
/// position at `steps_per_epoch` steps per epoch.
void restore(const loaded_checkpoint& c, nn::module<float>& model, optim::optimizer<float>& opt,
             std::size_t steps_per_epoch);

/// The metrics rows of epochs 1..epochs_done from the run's `csv_path`. Rows
/// after the checkpoint (written just before a crash) are dropped; missing
/// rows, or a last row that is not the checkpoint's, throw naming both files
/// and what disagrees. A missing file gives no rows and sets `warning`.
std::vector<epoch_record> metrics_up_to(const loaded_checkpoint& c, const std::string& csv_path,
                                        std::string& warning);

}  // namespace tapegrad::app
