#!/usr/bin/env bash
# The API reference from the `///` comments, with Debian's doxygen: one page per
# layer (docs/api/*.md) linking its headers, and docs/index.md as the main page.
#   bash scripts/docs.sh            -> build/docs/html/index.html ($TAPEGRAD_DOCS_OUT/html if set)
# Doxygen's warnings go to build/docs/warnings.log.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v doxygen >/dev/null || { echo "docs.sh: doxygen is missing: apt-get install doxygen" >&2; exit 1; }
out="${TAPEGRAD_DOCS_OUT:-build/docs}"
mkdir -p "$out"
version=$(sed -n 's/^project(tapegrad VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
doxygen - > "$out/doxygen.log" <<DOXYFILE
PROJECT_NAME           = tapegrad
PROJECT_NUMBER         = $version
PROJECT_BRIEF          = "Tape-based reverse-mode autodiff on xtensor"
OUTPUT_DIRECTORY       = $out
INPUT                  = docs README.md autograd io nn optim formulas data
FILE_PATTERNS          = *.hpp *.md
RECURSIVE              = YES
EXCLUDE_PATTERNS       = */detail/*
USE_MDFILE_AS_MAINPAGE = docs/index.md
FULL_PATH_NAMES        = YES
STRIP_FROM_PATH        = .
STRIP_FROM_INC_PATH    = .
EXTRACT_ALL            = NO
EXTRACT_PRIVATE        = NO
HIDE_UNDOC_MEMBERS     = NO
JAVADOC_AUTOBRIEF      = YES
MARKDOWN_SUPPORT       = YES
ENABLE_PREPROCESSING   = YES
MACRO_EXPANSION        = NO
PREDEFINED             = XTENSOR_USE_XSIMD
GENERATE_HTML          = YES
GENERATE_LATEX         = NO
HTML_OUTPUT            = html
QUIET                  = YES
WARNINGS               = YES
WARN_IF_UNDOCUMENTED   = NO
WARN_LOGFILE           = $out/warnings.log
HAVE_DOT               = NO
DOXYFILE
test -f "$out/html/index.html"
for layer in autograd io nn optim formulas data; do
  grep -rlq "layer_$layer" "$out/html" || { echo "docs.sh: no page for layer $layer" >&2; exit 1; }
done
echo "docs: $out/html/index.html ($(ls "$out/html" | wc -l) files, $(wc -l < "$out/warnings.log") warning lines in $out/warnings.log)"
