//! The web console: Chinese pages for people, served by the node itself over HTTPS on its LAN
//! address (plain HTTP only on loopback). It renders from the node's own store, so a county's
//! console keeps working while the province is gone.
//!
//! - [`serve`]: the listener (rustls), [`session`]: sign-in sessions and CSRF tokens,
//!   [`auth`]: the sign-in, sign-out and password pages and the layer that turns a session cookie
//!   into a [`crate::api::principal::Principal`].
//! - [`layout`]: the page shell (header, navigation by permission), [`pages`]: one module per
//!   page, each calling the same domain functions as the admin API.
//! - [`assets`]: the stylesheet and scripts, embedded in the binary (nothing is fetched).

pub mod assets;
pub mod layout;
pub mod pages;
pub mod session;
