//! A BERT encoder's forward pass (all-MiniLM-L6-v2's architecture) in f32.
//!
//! Embeddings (word + position + token type 0, LayerNorm), then per layer: self-attention
//! with the padding masked out, output projection, residual and LayerNorm; the feed-forward
//! block with exact (erf) GELU, residual and LayerNorm. The matrix products are ndarray's,
//! which are matrixmultiply's sgemm kernels (runtime-detected AVX/FMA) on the calling
//! thread: no thread pool.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut1, Axis, Slice};
use serde::Deserialize;

use crate::EmbedError;
use crate::weights::Weights;

/// The fields of a Hugging Face BERT `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) max_position_embeddings: usize,
    pub(crate) type_vocab_size: usize,
    pub(crate) layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub(crate) hidden_act: String,
}

fn gelu() -> String {
    "gelu".to_owned()
}

impl BertConfig {
    /// Refuses configurations this forward pass does not implement.
    pub(crate) fn check(&self, model: &str) -> Result<(), EmbedError> {
        let fail = |reason: String| Err(EmbedError::invalid(model, reason));
        if self.hidden_act != "gelu" {
            return fail(format!("hidden_act {} is not supported", self.hidden_act));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return fail(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        ]
        .contains(&0)
        {
            return fail("a size in config.json is 0".to_owned());
        }
        Ok(())
    }
}

struct Linear {
    /// `[out, in]`, as PyTorch stores it.
    weight: Array2<f32>,
    bias: Vec<f32>,
}

impl Linear {
    fn load(w: &Weights<'_>, name: &str, out: usize, inp: usize) -> Result<Self, EmbedError> {
        let weight = w.f32(&format!("{name}.weight"), &[out, inp])?;
        let weight = Array2::from_shape_vec((out, inp), weight)
            .map_err(|e| EmbedError::invalid(name, e.to_string()))?;
        let bias = w.f32(&format!("{name}.bias"), &[out])?;
        Ok(Self { weight, bias })
    }

    /// `x · Wᵀ + b` for the rows of `x`.
    fn forward(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut y = Array2::from_shape_fn((x.nrows(), self.weight.nrows()), |(_, j)| self.bias[j]);
        general_mat_mul(1.0, &x, &self.weight.t(), 1.0, &mut y);
        y
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &Weights<'_>, name: &str, size: usize, eps: f32) -> Result<Self, EmbedError> {
        Ok(Self {
            gamma: w.f32(&format!("{name}.weight"), &[size])?,
            beta: w.f32(&format!("{name}.bias"), &[size])?,
            eps,
        })
    }

    /// Normalises every row of `x` in place.
    fn apply(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            let n = row.len() as f32;
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    output_norm: LayerNorm,
}

/// The encoder's weights.
pub(crate) struct Bert {
    config: BertConfig,
    word: Array2<f32>,
    position: Array2<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Loads the weights of `config`'s shape from a safetensors buffer (tensor names as
    /// `BertModel` saves them, with or without a `bert.` prefix).
    pub(crate) fn load(model: &str, config: BertConfig, bytes: &[u8]) -> Result<Self, EmbedError> {
        config.check(model)?;
        let w = Weights::parse(model, bytes)?;
        let p = if w.has("embeddings.word_embeddings.weight") {
            ""
        } else {
            "bert."
        };
        let (h, i, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps as f32,
        );
        let matrix = |name: &str, rows: usize| -> Result<Array2<f32>, EmbedError> {
            let data = w.f32(&format!("{p}{name}"), &[rows, h])?;
            Array2::from_shape_vec((rows, h), data)
                .map_err(|e| EmbedError::invalid(model, e.to_string()))
        };
        let word = matrix("embeddings.word_embeddings.weight", config.vocab_size)?;
        let position = matrix(
            "embeddings.position_embeddings.weight",
            config.max_position_embeddings,
        )?;
        let token_type = matrix(
            "embeddings.token_type_embeddings.weight",
            config.type_vocab_size,
        )?
        .row(0)
        .to_vec();
        let embedding_norm = LayerNorm::load(&w, &format!("{p}embeddings.LayerNorm"), h, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let n = |rest: &str| format!("{p}encoder.layer.{l}.{rest}");
            layers.push(Layer {
                query: Linear::load(&w, &n("attention.self.query"), h, h)?,
                key: Linear::load(&w, &n("attention.self.key"), h, h)?,
                value: Linear::load(&w, &n("attention.self.value"), h, h)?,
                attention_out: Linear::load(&w, &n("attention.output.dense"), h, h)?,
                attention_norm: LayerNorm::load(&w, &n("attention.output.LayerNorm"), h, eps)?,
                up: Linear::load(&w, &n("intermediate.dense"), i, h)?,
                down: Linear::load(&w, &n("output.dense"), h, i)?,
                output_norm: LayerNorm::load(&w, &n("output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            config,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
        })
    }

    /// The longest sequence the position table allows.
    pub(crate) fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// How many token ids the word table has.
    pub(crate) fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// The width of the output vectors.
    pub(crate) fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// The last hidden states, `[batch * seq, hidden]`, of `ids` (`batch` sequences of
    /// `seq` ids each, row-major, padded); `lens[b]` is how many ids of sequence `b` are
    /// real (the rest are masked out of attention). Ids must be below the vocabulary
    /// size and `seq` at most [`Self::max_positions`]: the caller checks.
    pub(crate) fn forward(&self, ids: &[u32], seq: usize, lens: &[usize]) -> Array2<f32> {
        let batch = lens.len();
        let h = self.config.hidden_size;
        let mut x = Array2::<f32>::zeros((batch * seq, h));
        for (r, mut row) in x.rows_mut().into_iter().enumerate() {
            let id = ids.get(r).copied().unwrap_or(0) as usize;
            let word = self.word.row(id.min(self.word.nrows() - 1));
            let pos = self.position.row((r % seq).min(self.position.nrows() - 1));
            for (j, v) in row.iter_mut().enumerate() {
                *v = word[j] + pos[j] + self.token_type[j];
            }
        }
        self.embedding_norm.apply(&mut x);
        for layer in &self.layers {
            x = self.layer(layer, x, seq, lens);
        }
        x
    }

    fn layer(&self, layer: &Layer, x: Array2<f32>, seq: usize, lens: &[usize]) -> Array2<f32> {
        let heads = self.config.num_attention_heads;
        let d = self.config.hidden_size / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let q = layer.query.forward(x.view());
        let k = layer.key.forward(x.view());
        let v = layer.value.forward(x.view());
        let mut context = Array2::<f32>::zeros(x.raw_dim());
        let mut scores = Array2::<f32>::zeros((seq, seq));
        for (b, &len) in lens.iter().enumerate() {
            let rows = Slice::from(b * seq..(b + 1) * seq);
            for head in 0..heads {
                let cols = Slice::from(head * d..(head + 1) * d);
                let (qh, kh, vh) = (
                    block(&q, rows, cols),
                    block(&k, rows, cols),
                    block(&v, rows, cols),
                );
                general_mat_mul(scale, &qh, &kh.t(), 0.0, &mut scores);
                for row in scores.rows_mut() {
                    softmax_masked(row, len);
                }
                let mut out = context.view_mut();
                out.slice_axis_inplace(Axis(0), rows);
                out.slice_axis_inplace(Axis(1), cols);
                general_mat_mul(1.0, &scores, &vh, 0.0, &mut out);
            }
        }
        let mut x1 = layer.attention_out.forward(context.view());
        x1 += &x;
        layer.attention_norm.apply(&mut x1);
        let mut inner = layer.up.forward(x1.view());
        inner.mapv_inplace(gelu_erf);
        let mut x2 = layer.down.forward(inner.view());
        x2 += &x1;
        layer.output_norm.apply(&mut x2);
        x2
    }
}

/// The sub-matrix of `m` at `rows` and `cols`.
fn block(m: &Array2<f32>, rows: Slice, cols: Slice) -> ArrayView2<'_, f32> {
    let mut view = m.view();
    view.slice_axis_inplace(Axis(0), rows);
    view.slice_axis_inplace(Axis(1), cols);
    view
}

/// Softmax over the first `len` scores; the padding after them gets probability 0.
fn softmax_masked(mut row: ArrayViewMut1<'_, f32>, len: usize) {
    let max = row
        .iter()
        .take(len)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (i, v) in row.iter_mut().enumerate() {
        *v = if i < len { (*v - max).exp() } else { 0.0 };
        sum += *v;
    }
    if sum > 0.0 {
        row.mapv_inplace(|v| v / sum);
    }
}

/// GELU as BERT defines it: `x · Φ(x)` with the exact normal CDF.
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Mean of the first `len` rows of each sequence's block of `hidden` (rows
/// `b * seq ..`), L2-normalised: sentence-transformers' mean pooling and Normalize.
pub(crate) fn mean_pool_normalised(
    hidden: &Array2<f32>,
    seq: usize,
    lens: &[usize],
) -> Vec<Vec<f32>> {
    lens.iter()
        .enumerate()
        .map(|(b, &len)| {
            if len == 0 {
                return vec![0.0; hidden.ncols()];
            }
            let block = hidden.slice_axis(Axis(0), Slice::from(b * seq..b * seq + len));
            let mean = block.sum_axis(Axis(0)) / len as f32;
            crate::normalise(mean.to_vec())
        })
        .collect()
}
