//! The listener actor: takes authenticated incoming connections from the transport and hands
//! them to the root actor, which decides (by the topology) whether the peer may link here.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::runtime::root::NodeMsg;
use crate::transport::{Transport, TransportError};

pub struct ListenerActor;

pub enum ListenerMsg {
    /// The endpoint shut down: nothing more to accept.
    EndpointClosed,
}

pub struct ListenerArgs {
    pub transport: Arc<dyn Transport>,
    pub root: ActorRef<NodeMsg>,
}

impl Actor for ListenerActor {
    type Msg = ListenerMsg;
    type State = JoinHandle<()>;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ListenerMsg>,
        args: ListenerArgs,
    ) -> Result<JoinHandle<()>, ActorProcessingErr> {
        let ListenerArgs { transport, root } = args;
        Ok(tokio::spawn(async move {
            loop {
                let msg = match transport.accept().await {
                    Ok(conn) => NodeMsg::Accepted(conn),
                    Err(TransportError::EndpointClosed) => break,
                    // One failed attempt (a bad certificate, a handshake timeout): report, go on.
                    Err(e) => NodeMsg::AcceptFailed(e),
                };
                if root.cast(msg).is_err() {
                    break;
                }
            }
            let _ = myself.cast(ListenerMsg::EndpointClosed);
        }))
    }

    async fn handle(
        &self,
        myself: ActorRef<ListenerMsg>,
        msg: ListenerMsg,
        _task: &mut JoinHandle<()>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ListenerMsg::EndpointClosed => myself.stop(Some("endpoint closed".into())),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ListenerMsg>,
        task: &mut JoinHandle<()>,
    ) -> Result<(), ActorProcessingErr> {
        task.abort();
        Ok(())
    }
}
