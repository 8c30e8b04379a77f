// Umbrella header for the host-side library (no CUDA): core shapes and dispatch, the Eigen reference
// math and model, file readers, tokenizer, evaluation and the CPU kernels. CUDA users include <mla/mla.cuh>.
#pragma once

#include "mla/core/dispatch.hpp"
#include "mla/core/error.hpp"
#include "mla/core/shape.hpp"
#include "mla/core/supported_shapes.hpp"
#include "mla/cpu/gqa_decode.hpp"
#include "mla/cpu/mla_decode.hpp"
#include "mla/eval/perplexity.hpp"
#include "mla/io/gguf.hpp"
#include "mla/io/safetensors.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/load_gguf.hpp"
#include "mla/reference/exact_rewrite.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"
#include "mla/reference/online_softmax.hpp"
#include "mla/reference/rope.hpp"
#include "mla/tokenizer/tokenizer.hpp"
