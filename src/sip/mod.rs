//! SIP: normalising parser front, transactions, dialogs and transports.
