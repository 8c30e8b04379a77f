// mla::ref::exact_mla_from_gqa: rewrites a GQA layer as an MLA layer with no approximation (TransMLA
// stage 1). The latent is the stack of all KV heads' post-projection keys and values,
//   c_t = [k_0 .. k_{n_kv-1}, v_0 .. v_{n_kv-1}]  [latent_rank = 2*n_kv*head_dim]
// (key of KV head j at [j*d, (j+1)*d), value of KV head j at [(n_kv+j)*d, (n_kv+j+1)*d)), with RoPE applied
// to each key block at the token's position before caching (latent_rope_offsets = {0, d, .., (n_kv-1)d}).
// W_uk^h and W_uv^h are 0/1 block selectors that pick query head h's KV group, so
//   q_nope,h . W_uk^h c_t = RoPE_q(q_h) . RoPE_t(k_g(t))   and   W_uv^h c_t = v_g(t)
// exactly, in both the naive and the absorbed form. The cache is as large as the GQA cache; the
// compressing stages (RoPE split, factorisation) start from this layer.
#pragma once

#include <Eigen/Core>

#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"

namespace mla::ref {

template <class T>
mla_layer<T> exact_mla_from_gqa(const gqa_layer<T>& gqa) {
  gqa.validate();
  const int d = gqa.head_dim;
  const Eigen::Index kv_dim = Eigen::Index(gqa.n_kv_heads) * d;  // n_kv*head_dim

  mla_layer<T> m;
  m.hidden = gqa.hidden;
  m.n_heads = gqa.n_heads;
  m.nope_dim = d;  // the whole query head is "content"; its RoPE moves onto the latent
  m.rope_dim = 0;
  m.latent_rank = static_cast<int>(2 * kv_dim);
  m.v_head_dim = d;

  m.wq = gqa.wq;
  m.bq = gqa.bq;

  // Latent down-projection [2*n_kv*d, hidden] = [wk; wv], bias [bk; bv] (a missing half is zero).
  m.w_dkv.resize(m.latent_rank, gqa.hidden);
  m.w_dkv.topRows(kv_dim) = gqa.wk;
  m.w_dkv.bottomRows(kv_dim) = gqa.wv;
  if (gqa.bk.size() != 0 || gqa.bv.size() != 0) {
    m.b_dkv = vector<T>::Zero(m.latent_rank);
    if (gqa.bk.size() != 0) m.b_dkv.head(kv_dim) = gqa.bk;
    if (gqa.bv.size() != 0) m.b_dkv.tail(kv_dim) = gqa.bv;
  }
  m.w_kr.resize(0, gqa.hidden);

  // Block selectors [n_heads*d, latent_rank]: head h reads key block g and value block n_kv + g.
  m.w_uk = matrix<T>::Zero(Eigen::Index(gqa.n_heads) * d, m.latent_rank);
  m.w_uv = matrix<T>::Zero(Eigen::Index(gqa.n_heads) * d, m.latent_rank);
  for (int h = 0; h < gqa.n_heads; ++h) {
    const Eigen::Index g = gqa.kv_head_of(h);
    m.w_uk.block(Eigen::Index(h) * d, g * d, d, d).setIdentity();
    m.w_uv.block(Eigen::Index(h) * d, kv_dim + g * d, d, d).setIdentity();
  }

  m.wo = gqa.wo;
  m.bo = gqa.bo;
  m.sinks = gqa.sinks;
  m.rope = gqa.rope;
  m.attention = gqa.attention;
  m.latent_rope_offsets.clear();
  for (int j = 0; j < gqa.n_kv_heads; ++j) m.latent_rope_offsets.push_back(j * d);

  m.validate();
  return m;
}

}  // namespace mla::ref
