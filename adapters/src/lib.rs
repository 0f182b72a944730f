//! prism-adapters: training of the base model and the tool adapters, QUAD, calibration and
//! evaluation. The model definition, profile calibration (`prism_engine::calibrate`), the
//! differentiable NHWC convolution and the adapter format already live in `prism-engine`; the
//! training commands arrive with the training issue.
