#pragma once
// The public autodiff API in one include: the tensor handle, the node it points at,
// the tape it records on, and the grad-mode scopes. Each has its own header.
//
// Design (see README "How the tape works"):
//  * A tape is a flat, creation-ordered array of nodes; the reverse pass is one
//    loop from the end to the start. Creation order is a topological order.
//  * Nodes live in fixed-size blocks that are never moved, so a tensor handle is
//    a raw node pointer plus the serial number the node had when it was made.
//    Resetting the tape keeps every block and every value buffer, so a training
//    loop in steady state allocates nothing for the tape.
//  * Leaves (parameters, constants) are reference-counted nodes outside the tape.
//    Results of ops that need no gradient are leaves too, so inference does not
//    grow the tape.

#include <initializer_list>
#include <string>

#include "autograd/config.hpp"  // first: checks the build flags before xtensor is read
#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/shape.hpp"    // shape_t, shape_error, shape_str
#include "autograd/handle.hpp"   // tensor<T>: the handle users hold
#include "autograd/node.hpp"     // node<T>: one tape entry or leaf
#include "autograd/arena.hpp"    // arena: per-node op data
#include "autograd/tape.hpp"     // tape<T>, tape_stats, gradient_options, reset_tape
#include "autograd/scopes.hpp"   // grad_enabled, no_grad, enable_grad, gradient_tape
