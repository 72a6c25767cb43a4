//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes.
//!
//! Reading never trusts the prefix: a frame is refused above a bound, and below it the buffer
//! grows as bytes arrive (at most [`READ_CHUNK`] ahead), so a peer that claims 100 MiB and sends
//! ten bytes costs ten bytes.

use bytes::{BufMut, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame accepted by default, request or response: Kafka's own
/// `socket.request.max.bytes` default (100 MiB).
pub const MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// How far ahead of the bytes received the read buffer may grow.
pub const READ_CHUNK: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is negative or beyond the bound: garbage, or a peer we refuse.
    #[error("frame length {len} outside 0..={max}")]
    Size { len: i64, max: usize },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => e,
            FrameError::Size { .. } => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            FrameError::Truncated { .. } => {
                io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string())
            }
        }
    }
}

/// Reads one frame and returns it without its length prefix. `Ok(None)` when the stream ends
/// cleanly before a new frame starts.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match rd.read(&mut prefix[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated { got, want: 4 }),
            n => got += n,
        }
    }
    let len = i32::from_be_bytes(prefix);
    if len < 0 || len as usize > max {
        return Err(FrameError::Size {
            len: len.into(),
            max,
        });
    }
    let want = len as usize;
    let mut buf = BytesMut::with_capacity(want.min(READ_CHUNK));
    let mut limited = rd.take(want as u64);
    while buf.len() < want {
        buf.reserve((want - buf.len()).min(READ_CHUNK));
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(FrameError::Truncated {
                got: buf.len(),
                want,
            });
        }
    }
    Ok(Some(buf))
}

/// Like [`read_frame`], but the end of the stream is an error too (a peer that owes a reply).
pub async fn read_owed_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<BytesMut, FrameError> {
    // The bare kind ("unexpected end of file"): clients have always said so, and the words are
    // in every simulated history, so in its trace hash.
    read_frame(rd, max)
        .await?
        .ok_or_else(|| FrameError::Io(io::ErrorKind::UnexpectedEof.into()))
}

/// A buffer for a frame being built: room for the length prefix, then the body is appended.
/// [`seal`] fills the prefix in.
pub fn start(capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(4 + capacity);
    buf.put_i32(0);
    buf
}

/// Fills in the length prefix of a frame begun with [`start`]; `Err` with the body's length if it
/// does not fit in the prefix.
pub fn seal(buf: &mut BytesMut) -> Result<(), usize> {
    let body = buf.len() - 4;
    let len = i32::try_from(body).map_err(|_| body)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A frame holding `body`: its length prefix, then the body.
pub fn framed(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(4 + body.len());
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn frames_are_bounded() {
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, 1024).await,
            Err(FrameError::Size { .. })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut negative, 1024).await,
            Err(FrameError::Size { len: -1, .. })
        ));
        let mut truncated: &[u8] = &[0, 0, 0, 20, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut truncated, 1024).await,
            Err(FrameError::Truncated { got: 3, want: 20 })
        ));
        let mut torn_prefix: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut torn_prefix, 1024).await,
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 1024).await.unwrap().is_none());
        let mut empty: &[u8] = &[];
        assert!(read_owed_frame(&mut empty, 1024).await.is_err());
    }

    /// The client tells garbage (a malformed reply) from a cut connection by the error's kind.
    #[tokio::test]
    async fn bad_lengths_are_invalid_data_and_short_frames_eof() {
        let owed = |b: &'static [u8]| async move {
            let mut rd = b;
            io::Error::from(read_owed_frame(&mut rd, 100).await.unwrap_err()).kind()
        };
        assert_eq!(
            owed(&[0xff, 0xff, 0xff, 0xff]).await,
            io::ErrorKind::InvalidData
        );
        assert_eq!(owed(&[0, 0, 0, 101]).await, io::ErrorKind::InvalidData);
        assert_eq!(
            owed(&[0, 0, 0, 5, 1, 2]).await,
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(owed(&[]).await, io::ErrorKind::UnexpectedEof);
        let mut ok: &[u8] = &[0, 0, 0, 2, 1, 2, 9];
        assert_eq!(&read_owed_frame(&mut ok, 100).await.unwrap()[..], &[1, 2]);
    }

    #[tokio::test]
    async fn frames_round_trip_and_follow_each_other() {
        let mut wire = framed(b"hello").to_vec();
        let mut second = start(3);
        second.put_slice(b"abc");
        seal(&mut second).unwrap();
        wire.extend_from_slice(&second);
        wire.extend_from_slice(&framed(b""));
        let mut rd: &[u8] = &wire;
        assert_eq!(
            &read_frame(&mut rd, 16).await.unwrap().unwrap()[..],
            b"hello"
        );
        assert_eq!(&read_frame(&mut rd, 16).await.unwrap().unwrap()[..], b"abc");
        assert!(read_frame(&mut rd, 16).await.unwrap().unwrap().is_empty());
        assert!(read_frame(&mut rd, 16).await.unwrap().is_none());
    }

    /// A prefix that claims far more than arrives must not reserve the claimed length.
    #[tokio::test]
    async fn a_lying_prefix_costs_only_what_arrives() {
        let (mut tx, mut rx) = tokio::io::duplex(1024);
        tx.write_all(&(64i32 << 20).to_be_bytes()).await.unwrap();
        tx.write_all(&[7u8; 10]).await.unwrap();
        drop(tx);
        let mut rd = &mut rx;
        match read_frame(&mut rd, MAX_FRAME_BYTES).await {
            Err(FrameError::Truncated { got: 10, want }) => assert_eq!(want, 64 << 20),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn large_frames_arrive_whole() {
        let body: Vec<u8> = (0..(3 * READ_CHUNK + 17)).map(|i| i as u8).collect();
        let wire = framed(&body);
        let mut rd: &[u8] = &wire;
        assert_eq!(
            &read_frame(&mut rd, MAX_FRAME_BYTES).await.unwrap().unwrap()[..],
            &body[..]
        );
    }
}
