//! Topics and who may write them: xus's home directory (topic secrets,
//! seen heads, `config.toml`), head addresses (`xus://TOPIC/BRANCH`),
//! writer keys, which updates a new head lists, and the signed push request,
//! its metadata offers and its answer that writers and masters exchange.
//! Pure data and files: no network.

pub mod head_address;
pub mod home;
pub mod metadata_offer;
pub mod push_answer;
pub mod push_request;
pub mod update_chain;
pub mod writer_key;
