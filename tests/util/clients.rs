//! Drivers for stock BitTorrent clients (libtorrent, aria2c, Transmission) on loopback.
