//! A seeded generator of sentence-embedding-like vectors, for benchmarks and tests.
//!
//! Uniform random vectors in 384 dimensions are the worst case for every approximate
//! nearest-neighbour index (all distances are nearly equal, so there is no neighbourhood to
//! find) and look nothing like real embeddings, which lie near a low-dimensional manifold,
//! cluster by topic, and share a common direction. This generator draws:
//!
//! 1. `clusters` topic centres in a `latent_dims`-dimensional latent space, each coordinate
//!    `k` normal with standard deviation `(1 + k)^-decay` (a decaying spectrum, as the
//!    principal components of real embeddings have);
//! 2. for each vector, a topic with Zipf-like weights `1 / (rank + 1)^zipf` (a few big topics,
//!    many small ones), then the topic centre plus a Gaussian offset of the same spectrum
//!    scaled by the topic's own spread (uniform in `[0.5, 1.5] × spread`);
//! 3. the latent point mapped to `dims` dimensions through a fixed random linear map
//!    (entries normal, variance `1 / latent_dims`), plus a common offset of relative size
//!    `anisotropy` along a fixed random direction, plus isotropic noise of relative size
//!    `noise`;
//! 4. the result normalised to unit length.
//!
//! Everything derives from `seed`; the same spec gives the same vectors on every machine.

/// The parameters of [`Generator`]; [`Spec::default`] is the benchmark's data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Output dimensions.
    pub dims: usize,
    /// Dimensions of the latent space the topics live in.
    pub latent_dims: usize,
    /// Number of topic centres.
    pub clusters: usize,
    /// Within-topic spread relative to the spread of the centres.
    pub spread: f32,
    /// Decay exponent of the latent spectrum (0 = isotropic latent space).
    pub decay: f32,
    /// Zipf exponent of the topic sizes (0 = equal sizes).
    pub zipf: f32,
    /// Size of the common offset relative to the typical signal norm.
    pub anisotropy: f32,
    /// Size of the isotropic noise relative to the typical signal norm.
    pub noise: f32,
    /// The seed everything is drawn from.
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            dims: 384,
            latent_dims: 48,
            clusters: 3000,
            spread: 0.6,
            decay: 0.5,
            zipf: 0.8,
            anisotropy: 0.35,
            noise: 0.25,
            seed: 0x5eed_2026,
        }
    }
}

impl Spec {
    /// The default spec with other output dimensions and seed (latent dimensions and
    /// topic count shrink with small `dims`, for tests).
    pub fn with(dims: usize, seed: u64) -> Self {
        let base = Self::default();
        Self {
            dims,
            latent_dims: base.latent_dims.min(dims.max(1)),
            seed,
            ..base
        }
    }
}

/// A small, fast, seeded pseudo-random generator (xoshiro256++ seeded by SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            state: [next(), next(), next(), next()],
            spare: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`; 0 when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        if let Some(spare) = self.spare.take() {
            return spare;
        }
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        let r = (-2.0 * u.ln()).sqrt();
        let theta = std::f64::consts::TAU * v;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// Draws vectors as [`Spec`] describes.
#[derive(Debug, Clone)]
pub struct Generator {
    spec: Spec,
    scale: Vec<f32>,
    centres: Vec<f32>,
    spreads: Vec<f32>,
    cumulative: Vec<f64>,
    map: Vec<f32>,
    offset: Vec<f32>,
    noise_sd: f32,
    rng: Rng,
}

impl Generator {
    /// Draws the fixed parts (centres, map, offset) from `spec.seed`.
    pub fn new(spec: Spec) -> Self {
        let dims = spec.dims.max(1);
        let latent = spec.latent_dims.max(1);
        let clusters = spec.clusters.max(1);
        let mut rng = Rng::new(spec.seed);
        let scale: Vec<f32> = (0..latent)
            .map(|k| (1.0 + k as f32).powf(-spec.decay))
            .collect();
        let centres = (0..clusters * latent)
            .map(|i| rng.normal() as f32 * scale[i % latent])
            .collect();
        let spreads = (0..clusters)
            .map(|_| spec.spread * (0.5 + rng.uniform() as f32))
            .collect();
        let mut total = 0.0;
        let cumulative = (0..clusters)
            .map(|rank| {
                total += 1.0 / (rank as f64 + 1.0).powf(f64::from(spec.zipf));
                total
            })
            .collect();
        let map_sd = (1.0 / latent as f64).sqrt();
        let map = (0..dims * latent)
            .map(|_| (rng.normal() * map_sd) as f32)
            .collect();
        // Typical signal norm: the latent point's expected norm (the map keeps norms).
        let energy: f32 =
            scale.iter().map(|s| s * s).sum::<f32>() * (1.0 + spec.spread * spec.spread);
        let signal = energy.sqrt();
        let mut direction: Vec<f32> = (0..dims).map(|_| rng.normal() as f32).collect();
        let norm = direction
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        for x in &mut direction {
            *x *= spec.anisotropy * signal / norm;
        }
        let noise_sd = spec.noise * signal / (dims as f32).sqrt();
        Self {
            spec,
            scale,
            centres,
            spreads,
            cumulative,
            map,
            offset: direction,
            noise_sd,
            rng,
        }
    }

    /// The spec this generator draws from.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Draws one vector into `out` (`out.len()` should be `spec.dims`) and returns its topic.
    pub fn fill(&mut self, out: &mut [f32]) -> usize {
        let latent = self.scale.len();
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let pick = self.rng.uniform() * total;
        let topic = self
            .cumulative
            .partition_point(|&c| c <= pick)
            .min(self.spreads.len() - 1);
        let spread = self.spreads[topic];
        let centre = &self.centres[topic * latent..(topic + 1) * latent];
        let z: Vec<f32> = (0..latent)
            .map(|k| centre[k] + spread * self.scale[k] * self.rng.normal() as f32)
            .collect();
        for (i, slot) in out.iter_mut().enumerate() {
            let row = &self.map[(i % self.offset.len()) * latent..][..latent];
            let signal: f32 = row.iter().zip(&z).map(|(a, b)| a * b).sum();
            *slot = signal
                + self.offset[i % self.offset.len()]
                + self.noise_sd * self.rng.normal() as f32;
        }
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            for x in out.iter_mut() {
                *x /= norm;
            }
        }
        topic
    }

    /// Draws `n` vectors, row after row (`n × spec.dims` values).
    pub fn take(&mut self, n: usize) -> Vec<f32> {
        let dims = self.spec.dims.max(1);
        let mut out = vec![0.0; n * dims];
        for row in out.chunks_exact_mut(dims) {
            self.fill(row);
        }
        out
    }
}
