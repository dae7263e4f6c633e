//! The console's pages, one module each; every one renders from this node's own store and calls
//! the same domain functions as the admin API.
