#pragma once
// The audit of the article's formulas (formulas/article.hpp): each formula is
// checked, in float64 on a random network and batch, against the tape's
// gradients and against central differences, through tapegrad::hand_check.
// Where a formula does not hold, the audit says why and checks the corrected
// formula, which must hold. Run for the article's softmax output and for a
// sigmoid output.

#include <string>
#include <vector>

#include "formulas/article.hpp"
#include "formulas/hand_check.hpp"

namespace tapegrad::formulas {

/// The verdict on one formula for one network.
struct formula_check {
    output_activation activation = output_activation::softmax; ///< which network
    std::string name;      ///< short name: "delta3", "delta2", "W1 gradient", ...
    std::string article;   ///< the formula as the article states it, in our reading
    std::string meaning;   ///< what it must equal to be right, e.g. "-dE/dz2"
    std::string param;     ///< the parameter of `report` this formula is the gradient for ("z2", "W1", ...)
    bool holds = false;    ///< agrees with the tape and with central differences
    double max_abs_error = 0;          ///< max |formula - tape|
    double max_rel_error = 0;          ///< max relative error against the tape
    double max_abs_error_numeric = 0;  ///< max |formula - central difference|
    hand_diagnosis diagnosis = hand_diagnosis::agrees; ///< what the mismatch looks like
    double ratio = 0;                  ///< least-squares ratio formula / truth
    std::string why;       ///< why it holds or, when it does not, which term is missing or wrong
    std::string corrected; ///< the corrected formula (empty when the article's holds)
    bool corrected_holds = true;          ///< the corrected formula agrees (true when there is none)
    double corrected_max_abs_error = 0;   ///< its max |corrected - tape|
    double corrected_max_abs_error_numeric = 0; ///< its max |corrected - central difference|
    hand_check_report report;             ///< the full check of the article's formula
    hand_check_report corrected_report;   ///< the full check of the corrected one (empty when none)
};

/// The whole audit.
struct audit_result {
    unsigned seed = 0;       ///< seed of the random network and batch
    std::size_t in = 0, hidden = 0, out = 0, samples = 0; ///< sizes used
    std::vector<formula_check> checks; ///< softmax checks first, then sigmoid

    /// The check called `name` for `activation`; throws std::out_of_range naming it if absent.
    const formula_check& find(output_activation activation, const std::string& name) const;
    /// Every corrected formula (and every formula that needed none) holds.
    bool all_corrected_hold() const;
};

/// Run the audit on a random problem made from `seed` (formulas::make_problem's sizes).
audit_result run_audit(unsigned seed);

/// The audit as printable text (used by `tapegrad gradcheck` and examples/article_audit).
std::string audit_report(unsigned seed);

/// Print an audit that was already run.
std::string audit_report(const audit_result& result);

}  // namespace tapegrad::formulas
