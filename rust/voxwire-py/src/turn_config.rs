//! `TurnConfig`: the turn parameters, one frozen value shared by `TurnDetector` and
//! `InputPipeline`.

use crate::errors::{guard, sat, sat_opt, IntoPyResult};
use crate::vad::end_mode_arg;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString, PyTuple};
use std::hash::{Hash, Hasher};
use voxwire_core::vad::turn::{TurnConfig as Core, DEFAULT_START_MS, DEFAULT_VAD_RESET_MS};
use voxwire_core::Error;

/// Turn detection parameters (keyword-only), shared by :class:`TurnDetector` and
/// :class:`InputPipeline` (``turn=TurnConfig(...)``): OpenAI's server_vad (``threshold``,
/// ``prefix_padding_ms``, ``silence_duration_ms``) and pipecat's VADParams (``start_secs``,
/// ``stop_secs`` -- the same as ``silence_duration_ms``, which wins when both are given --
/// and ``min_volume`` on a 0-1 scale from -60 dBFS to 0 dBFS; 0 disables it).
///
/// ``end_gate_db``: a frame that far or further below the turn's loudest frame counts as
/// silence for ending the turn, so faint tails, breath and room echo do not hold it open (0
/// disables; see :class:`TurnDetector`). ``end_mode="semantic"`` (OpenAI's semantic_vad)
/// ends a turn by judging the prosody of the utterance's end, waiting per ``eagerness``
/// ("low", "medium", "high", "auto" = medium); ``silence_duration_ms`` is then not used.
///
/// ``start_secs`` and ``vad_reset_ms``: the turn-start rule under the threshold (a turn
/// starts after 0.2 s of speech, dated to its first voiced frame; the silero engine's state
/// is cleared after 3 s of quiet between turns), chosen on benches/turn_start_sweep.py's
/// tuning split (docs/design/vad.md).
///
/// Defaults: OpenAI's server_vad (threshold 0.5, 300 ms prefix, 500 ms silence), 0.2 s
/// start, no volume floor, a 35 dB end gate, ``end_mode="silence"``, ``eagerness="auto"``,
/// 3000 ms VAD reset.
/// Frozen, comparable and hashable; ``copy.replace`` (Python 3.13) or
/// ``cfg.replace(**changes)`` makes a changed copy.
///
/// Bounds (else InvalidInputError): ``prefix_padding_ms``, ``silence_duration_ms``
/// (``stop_secs``) and ``start_secs`` 0 to 60000 ms (60 s); ``threshold`` and ``min_volume``
/// 0 to 1; ``end_gate_db`` finite, >= 0; ``end_mode`` "silence" or "semantic";
/// ``eagerness`` as above; ``vad_reset_ms`` 0 to 60000 ms.
#[pyclass(module = "voxwire._voxwire", name = "TurnConfig", frozen, eq, hash)]
#[derive(Clone, PartialEq)]
pub struct TurnConfig {
    /// The values as given (floats as Python floats), for the getters, repr and equality.
    threshold: f64,
    prefix_padding_ms: u32,
    silence_duration_ms: u32,
    start_secs: f64,
    min_volume: f64,
    end_gate_db: f64,
    end_mode: String,
    eagerness: String,
    vad_reset_ms: u32,
    /// What the core runs on (validated).
    core: Core,
}

impl Hash for TurnConfig {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // `+ 0.0` maps -0.0 to 0.0, so values that compare equal hash alike (NaN is refused).
        for f in [
            self.threshold,
            self.start_secs,
            self.min_volume,
            self.end_gate_db,
        ] {
            (f + 0.0).to_bits().hash(h);
        }
        self.prefix_padding_ms.hash(h);
        self.silence_duration_ms.hash(h);
        self.end_mode.hash(h);
        self.eagerness.hash(h);
        self.vad_reset_ms.hash(h);
    }
}

fn bad(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} must be a non-negative number"))
}

/// A non-negative ms count; too large saturates, for the core's range check to refuse
/// with the bounds in the message.
fn nonneg_ms(v: i64, what: &str) -> PyResult<u32> {
    if v < 0 {
        return Err(bad(what)).py();
    }
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Seconds as whole ms (rounded; too large saturates as above).
fn secs_ms(v: f64, what: &str) -> PyResult<u32> {
    if v.is_finite() && v >= 0.0 {
        Ok((v * 1000.0).round() as u32)
    } else {
        Err(bad(what)).py()
    }
}

impl TurnConfig {
    /// The configuration the core runs on.
    pub fn core(&self) -> Core {
        self.core
    }

    /// The turn argument of `TurnDetector` and `InputPipeline`: `None` is the defaults.
    pub fn core_of(turn: Option<&Bound<'_, TurnConfig>>) -> Core {
        turn.map_or_else(|| Self::default_config().core, |t| t.get().core)
    }

    fn default_config() -> Self {
        Self::build(
            0.5,
            300,
            None,
            f64::from(DEFAULT_START_MS) / 1000.0,
            None,
            0.0,
            35.0,
            "silence".into(),
            "auto".into(),
            i64::from(DEFAULT_VAD_RESET_MS),
        )
        .expect("the defaults are valid")
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        threshold: f64,
        prefix_padding_ms: i64,
        silence_duration_ms: Option<i64>,
        start_secs: f64,
        stop_secs: Option<f64>,
        min_volume: f64,
        end_gate_db: f64,
        end_mode: String,
        eagerness: String,
        vad_reset_ms: i64,
    ) -> PyResult<Self> {
        let silence = match (silence_duration_ms, stop_secs) {
            (Some(ms), _) => nonneg_ms(ms, "silence_duration_ms")?,
            (None, Some(s)) => secs_ms(s, "stop_secs")?,
            (None, None) => 500,
        };
        let core = Core {
            // As pyo3 converted these floats before: to f32, the core's type.
            threshold: threshold as f32,
            prefix_padding_ms: nonneg_ms(prefix_padding_ms, "prefix_padding_ms")?,
            silence_duration_ms: silence,
            start_ms: secs_ms(start_secs, "start_secs")?,
            min_volume: min_volume as f32,
            end_gate_db: end_gate_db as f32,
            end_mode: end_mode_arg(&end_mode, &eagerness).py()?,
            vad_reset_ms: nonneg_ms(vad_reset_ms, "vad_reset_ms")?,
        };
        core.validate().py()?;
        Ok(Self {
            threshold,
            prefix_padding_ms: core.prefix_padding_ms,
            silence_duration_ms: silence,
            start_secs,
            min_volume,
            end_gate_db,
            end_mode,
            eagerness,
            vad_reset_ms: core.vad_reset_ms,
            core,
        })
    }

    fn kwargs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("threshold", self.threshold)?;
        d.set_item("prefix_padding_ms", self.prefix_padding_ms)?;
        d.set_item("silence_duration_ms", self.silence_duration_ms)?;
        d.set_item("start_secs", self.start_secs)?;
        d.set_item("min_volume", self.min_volume)?;
        d.set_item("end_gate_db", self.end_gate_db)?;
        d.set_item("end_mode", &self.end_mode)?;
        d.set_item("eagerness", &self.eagerness)?;
        d.set_item("vad_reset_ms", self.vad_reset_ms)?;
        Ok(d)
    }
}

#[pymethods]
impl TurnConfig {
    #[new]
    #[pyo3(signature = (
        *, threshold = 0.5, prefix_padding_ms = 300, silence_duration_ms = None,
        stop_secs = None, start_secs = 0.2, min_volume = 0.0, end_gate_db = 35.0,
        end_mode = "silence", eagerness = "auto", vad_reset_ms = 3000
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        threshold: f64,
        #[pyo3(from_py_with = sat)] prefix_padding_ms: i64,
        #[pyo3(from_py_with = sat_opt)] silence_duration_ms: Option<i64>,
        stop_secs: Option<f64>,
        start_secs: f64,
        min_volume: f64,
        end_gate_db: f64,
        end_mode: &str,
        eagerness: &str,
        #[pyo3(from_py_with = sat)] vad_reset_ms: i64,
    ) -> PyResult<Self> {
        guard(|| {
            Self::build(
                threshold,
                prefix_padding_ms,
                silence_duration_ms,
                start_secs,
                stop_secs,
                min_volume,
                end_gate_db,
                end_mode.to_owned(),
                eagerness.to_owned(),
                vad_reset_ms,
            )
        })
    }

    /// A copy with the given fields changed (the same keywords as the constructor).
    #[pyo3(signature = (**changes))]
    fn replace<'py>(
        slf: &Bound<'py, Self>,
        changes: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let kw = slf.get().kwargs(py)?;
        if let Some(c) = changes {
            // stop_secs alone replaces the silence (silence_duration_ms would win).
            if c.contains("stop_secs")? && !c.contains("silence_duration_ms")? {
                kw.del_item("silence_duration_ms")?;
            }
            kw.update(c.as_mapping())?;
        }
        let obj = slf.get_type().call((), Some(&kw))?;
        Ok(obj.cast_into::<Self>()?)
    }

    /// ``copy.replace`` (Python 3.13).
    #[pyo3(signature = (**changes))]
    fn __replace__<'py>(
        slf: &Bound<'py, Self>,
        changes: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        Self::replace(slf, changes)
    }

    /// Pickling and ``copy``: rebuilt from the keyword arguments.
    fn __getnewargs_ex__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        Ok((PyTuple::empty(py), self.kwargs(py)?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let f = |v: f64| PyFloat::new(py, v).repr().map(|r| r.to_string());
        let q = |v: &str| PyString::new(py, v).repr().map(|r| r.to_string());
        Ok(format!(
            "TurnConfig(threshold={}, prefix_padding_ms={}, silence_duration_ms={}, \
             start_secs={}, min_volume={}, end_gate_db={}, end_mode={}, eagerness={}, vad_reset_ms={})",
            f(self.threshold)?,
            self.prefix_padding_ms,
            self.silence_duration_ms,
            f(self.start_secs)?,
            f(self.min_volume)?,
            f(self.end_gate_db)?,
            q(&self.end_mode)?,
            q(&self.eagerness)?,
            self.vad_reset_ms,
        ))
    }

    /// Speech probability at or above which a frame is voiced (OpenAI ``threshold``).
    #[getter]
    fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Audio kept before the start of speech, in ms (OpenAI ``prefix_padding_ms``).
    #[getter]
    fn prefix_padding_ms(&self) -> u32 {
        self.prefix_padding_ms
    }

    /// Silence that ends a turn, in ms (OpenAI ``silence_duration_ms``, pipecat
    /// ``stop_secs``).
    #[getter]
    fn silence_duration_ms(&self) -> u32 {
        self.silence_duration_ms
    }

    /// Voiced time needed before a turn starts, in seconds (pipecat ``start_secs``; used
    /// rounded to whole ms).
    #[getter]
    fn start_secs(&self) -> f64 {
        self.start_secs
    }

    /// Minimum frame level for voiced frames, 0-1 (pipecat ``min_volume``; 0: off).
    #[getter]
    fn min_volume(&self) -> f64 {
        self.min_volume
    }

    /// Frames this many dB below the turn's loudest count as silence for its end (0: off).
    #[getter]
    fn end_gate_db(&self) -> f64 {
        self.end_gate_db
    }

    /// The rule that ends a turn: "silence" or "semantic".
    #[getter]
    fn end_mode(&self) -> &str {
        &self.end_mode
    }

    /// The semantic rule's eagerness: "low", "medium", "high" or "auto".
    #[getter]
    fn eagerness(&self) -> &str {
        &self.eagerness
    }

    /// The silero engine's recurrent state is cleared after this much quiet while no turn
    /// is under way, as pipecat's Silero analyzer does (ms; 0: never).
    #[getter]
    fn vad_reset_ms(&self) -> u32 {
        self.vad_reset_ms
    }
}
