#include "optim/factory.hpp"

#include <stdexcept>
#include <utility>

namespace tapegrad::optim {

template <class T>
std::unique_ptr<optimizer<T>> make_optimizer(const optimizer_spec& s, std::vector<tensor<T>> params) {
    if (s.name == "sgd") {
        sgd_options o;
        o.lr = s.lr;
        o.momentum = s.momentum;
        o.weight_decay = s.weight_decay;
        return std::make_unique<sgd<T>>(std::move(params), o);
    }
    if (s.name == "adam") {
        adam_options o;
        o.lr = s.lr;
        o.weight_decay = s.weight_decay;
        return std::make_unique<adam<T>>(std::move(params), o);
    }
    if (s.name == "adamw") {
        adamw_options o;
        o.lr = s.lr;
        o.weight_decay = s.weight_decay;
        return std::make_unique<adamw<T>>(std::move(params), o);
    }
    if (s.name == "rmsprop") {
        rmsprop_options o;
        o.lr = s.lr;
        o.weight_decay = s.weight_decay;
        return std::make_unique<rmsprop<T>>(std::move(params), o);
    }
    if (s.name == "adagrad") {
        adagrad_options o;
        o.lr = s.lr;
        o.weight_decay = s.weight_decay;
        return std::make_unique<adagrad<T>>(std::move(params), o);
    }
    throw std::invalid_argument("unknown optimizer '" + s.name + "': use sgd, adam, adamw, rmsprop or adagrad");
}

template std::unique_ptr<optimizer<float>> make_optimizer(const optimizer_spec&, std::vector<tensor<float>>);
template std::unique_ptr<optimizer<double>> make_optimizer(const optimizer_spec&, std::vector<tensor<double>>);

}  // namespace tapegrad::optim
