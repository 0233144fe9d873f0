#pragma once
/// @file attnkit.hpp  Umbrella header: every kernel, policy and executor. Never includes Eigen
/// (that is attnkit/eigen.hpp).
#include "attnkit/config.hpp"
#include "attnkit/version.hpp"

#include "attnkit/core/args.hpp"
#include "attnkit/core/batch.hpp"
#include "attnkit/core/context.hpp"
#include "attnkit/core/errors.hpp"
#include "attnkit/core/options.hpp"
#include "attnkit/core/quant.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/types.hpp"

#include "attnkit/concepts/executor.hpp"
#include "attnkit/concepts/mask_policy.hpp"
#include "attnkit/concepts/normalizer_policy.hpp"
#include "attnkit/concepts/score_policy.hpp"

#include "attnkit/score/alibi.hpp"
#include "attnkit/score/dot_product.hpp"
#include "attnkit/score/score_fn.hpp"
#include "attnkit/score/sink_calibration.hpp"
#include "attnkit/score/softcap.hpp"

#include "attnkit/mask/block_layout.hpp"
#include "attnkit/mask/causal.hpp"
#include "attnkit/mask/combinators.hpp"
#include "attnkit/mask/document.hpp"
#include "attnkit/mask/local.hpp"
#include "attnkit/mask/mask_fn.hpp"
#include "attnkit/mask/no_mask.hpp"
#include "attnkit/mask/sink_tokens.hpp"
#include "attnkit/mask/sliding_window.hpp"
#include "attnkit/mask/ring.hpp"
#include "attnkit/mask/streaming.hpp"
#include "attnkit/mask/tree.hpp"

#include "attnkit/cache/append.hpp"

#include "attnkit/norm/sigmoid.hpp"
#include "attnkit/norm/softmax.hpp"
#include "attnkit/norm/softmax_with_sink.hpp"

#include "attnkit/exec/openmp.hpp"
#include "attnkit/exec/parallel_for.hpp"
#include "attnkit/exec/serial.hpp"

#include "attnkit/kernel/dense.hpp"
#include "attnkit/kernel/flash.hpp"
#include "attnkit/kernel/linear.hpp"
#include "attnkit/kernel/merge.hpp"
#include "attnkit/kernel/primitives.hpp"
