//! The conformance suite every provider runs against its real server: publish and consume,
//! per-key ordering, ack, nack and redelivery, dead letters after N attempts and redrive,
//! malformed payloads, headers and trace context, fan-out and groups, draining, request-reply,
//! and (per provider, on a private server) reconnecting after a broker restart.

mod suite;

mod memory {
    use std::sync::Arc;

    use microframework_messaging::{Broker, MemoryBroker};

    use crate::suite::Fixture;

    /// One in-process broker per case; every connection of a case shares it.
    #[derive(Default)]
    pub(crate) struct Memory(MemoryBroker);

    #[async_trait::async_trait]
    impl Fixture for Memory {
        async fn broker(&self) -> Arc<dyn Broker> {
            Arc::new(self.0.clone())
        }

        fn request_reply(&self) -> bool {
            true
        }
    }

    crate::conformance!(Memory::default());
}
