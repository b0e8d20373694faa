//! A DNS server on loopback for dial-out tests: answers SRV and A questions from its table
//! (NXDOMAIN for names it does not know, no data for other types) and keeps the questions
//! it was asked, so a test sees which lookups the server made.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// One record of the table.
pub enum Data {
    /// priority, weight, port, target
    Srv(u16, u16, u16, &'static str),
    A(Ipv4Addr),
}

pub struct DnsServer {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Serves `records` (name, data) over UDP on 127.0.0.1.
    pub async fn start(records: Vec<(&'static str, Data)>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = answer(&request, &records, &log);
                let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
            }
        });
        DnsServer { addr, asked, task }
    }

    /// The questions asked so far, as `TYPE name` (`SRV _sip._udp.trunk.test`).
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    request: &Message,
    records: &[(&'static str, Data)],
    asked: &Mutex<Vec<String>>,
) -> Message {
    let mut reply = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    let Some(query) = request.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    };
    reply.add_query(query.clone());
    let name = query.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    asked
        .lock()
        .unwrap()
        .push(format!("{} {name}", query.query_type()));
    let known = records.iter().filter(|(n, _)| *n == name);
    if known.clone().next().is_none() {
        reply.metadata.response_code = ResponseCode::NXDomain;
        return reply;
    }
    for (_, data) in known {
        let rdata = match (data, query.query_type()) {
            (Data::Srv(priority, weight, port, target), RecordType::SRV) => {
                let target = Name::from_ascii(target).unwrap();
                RData::SRV(SRV::new(*priority, *weight, *port, target))
            }
            (Data::A(ip), RecordType::A) => RData::A(A::from(*ip)),
            _ => continue,
        };
        reply.add_answer(Record::from_rdata(query.name().clone(), 60, rdata));
    }
    reply
}
