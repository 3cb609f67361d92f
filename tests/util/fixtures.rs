//! Builders of tricky Git commits for the fixture corpus.
