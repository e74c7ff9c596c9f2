//! The Kubernetes API server double and the end-to-end tests (in progress).
