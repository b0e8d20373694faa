//! Offer/answer against SDP shaped like what real phones and trunks send.
