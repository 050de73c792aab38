//! The plans of one batch: a list in memory, or a spool on disk so that an
//! upload of a million rows holds one chunk at a time, not the whole file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use cpis_domain::{LaCode, LocalReference, NhsNumber, Plan, PlanFields, PlanKey, PlanType};
use time::Date;

use crate::{StoreError, StoreResult};

/// The plans a [`crate::PlanBatch`] applies, in the order they were sent.
#[derive(Debug)]
pub enum Plans {
    Listed(Vec<Plan>),
    Spooled(PlanSpool),
}

impl From<Vec<Plan>> for Plans {
    fn from(plans: Vec<Plan>) -> Self {
        Plans::Listed(plans)
    }
}

impl Plans {
    pub fn len(&self) -> u64 {
        match self {
            Plans::Listed(plans) => plans.len() as u64,
            Plans::Spooled(spool) => spool.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the plans back in chunks of at most `size`, in order.
    pub fn chunks(&self, size: usize) -> StoreResult<Chunks<'_>> {
        let size = size.max(1);
        match self {
            Plans::Listed(plans) => Ok(Chunks::Listed(plans.chunks(size))),
            Plans::Spooled(spool) => {
                // The clone shares the file's offset; only one reader exists
                // at a time, and writing finished in `PlanSpool::finish`.
                let mut file = spool.file.try_clone().map_err(spool_error)?;
                file.seek(SeekFrom::Start(0)).map_err(spool_error)?;
                Ok(Chunks::Spooled {
                    reader: BufReader::with_capacity(256 * 1024, file),
                    la: spool.la,
                    left: spool.len,
                    size,
                })
            }
        }
    }

    /// The LA every plan must belong to, checked for a listed batch.
    pub(crate) fn first_foreign(&self, la: LaCode) -> Option<LaCode> {
        match self {
            Plans::Listed(plans) => plans.iter().map(Plan::la).find(|other| *other != la),
            // A spool takes its LA's plans only; see `PlanSpoolWriter::push`.
            Plans::Spooled(spool) => (spool.la != la).then_some(spool.la),
        }
    }
}

/// Chunks of plans, borrowed from a list or decoded from a spool.
pub enum Chunks<'a> {
    Listed(std::slice::Chunks<'a, Plan>),
    Spooled {
        reader: BufReader<File>,
        la: LaCode,
        left: u64,
        size: usize,
    },
}

impl<'a> Chunks<'a> {
    /// The next chunk; `None` after the last.
    pub fn next_chunk(&mut self) -> StoreResult<Option<Cow<'a, [Plan]>>> {
        match self {
            Chunks::Listed(chunks) => Ok(chunks.next().map(Cow::Borrowed)),
            Chunks::Spooled {
                reader,
                la,
                left,
                size,
            } => {
                if *left == 0 {
                    return Ok(None);
                }
                let take = (*left).min(*size as u64);
                let mut chunk = Vec::with_capacity(take as usize);
                for _ in 0..take {
                    chunk.push(decode(reader, *la)?);
                }
                *left -= take;
                Ok(Some(Cow::Owned(chunk)))
            }
        }
    }
}

/// Plans written to an unnamed temporary file, which the system removes
/// when the last handle closes, even after a crash.
#[derive(Debug)]
pub struct PlanSpool {
    file: File,
    la: LaCode,
    len: u64,
}

/// Writes one LA's plans into a [`PlanSpool`].
pub struct PlanSpoolWriter {
    out: BufWriter<File>,
    la: LaCode,
    len: u64,
}

impl PlanSpoolWriter {
    /// A spool in the system's temporary directory.
    pub fn new(la: LaCode) -> io::Result<Self> {
        Ok(PlanSpoolWriter {
            out: BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?),
            la,
            len: 0,
        })
    }

    pub fn push(&mut self, plan: &Plan) -> io::Result<()> {
        if plan.la() != self.la {
            return Err(io::Error::other(format!(
                "a plan of {} cannot be spooled for {}",
                plan.la(),
                self.la
            )));
        }
        encode(&mut self.out, plan)?;
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> io::Result<PlanSpool> {
        let file = self.out.into_inner().map_err(|error| error.into_error())?;
        Ok(PlanSpool {
            file,
            la: self.la,
            len: self.len,
        })
    }
}

fn spool_error(error: io::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

const NO_DATE: i32 = i32::MIN;

// One plan: NHS number (8 bytes), plan type (1), four dates as Julian days
// (4 each, NO_DATE for none), the local reference's length (1) and bytes.
fn encode(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    let day = |date: Option<Date>| date.map_or(NO_DATE, Date::to_julian_day).to_le_bytes();
    out.write_all(&plan.nhs_number().as_u64().to_le_bytes())?;
    let kind = PlanType::ALL
        .iter()
        .position(|kind| *kind == plan.plan_type())
        .unwrap_or(0) as u8;
    out.write_all(&[kind])?;
    out.write_all(&day(Some(plan.start_date())))?;
    out.write_all(&day(plan.end_date()))?;
    out.write_all(&day(plan.delete_date()))?;
    out.write_all(&day(plan.expected_delivery_date()))?;
    let reference = plan.local_reference().map_or("", LocalReference::as_str);
    // LocalReference::MAX_LEN is 64, so the length fits a byte.
    out.write_all(&[reference.len() as u8])?;
    out.write_all(reference.as_bytes())
}

fn decode(input: &mut impl Read, la: LaCode) -> StoreResult<Plan> {
    let corrupt = |what: String| StoreError::Corrupt(format!("the upload spool: {what}"));
    let mut fixed = [0u8; 8 + 1 + 16 + 1];
    input.read_exact(&mut fixed).map_err(spool_error)?;
    let word =
        |at: usize| i32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    let date = |at: usize| -> StoreResult<Option<Date>> {
        match word(at) {
            NO_DATE => Ok(None),
            day => Date::from_julian_day(day)
                .map(Some)
                .map_err(|error| corrupt(error.to_string())),
        }
    };
    let mut nhs = [0u8; 8];
    nhs.copy_from_slice(&fixed[..8]);
    let nhs_number =
        NhsNumber::from_u64(u64::from_le_bytes(nhs)).map_err(|error| corrupt(error.to_string()))?;
    let plan_type = *PlanType::ALL
        .get(usize::from(fixed[8]))
        .ok_or_else(|| corrupt(format!("plan type {}", fixed[8])))?;
    let start_date = date(9)?.ok_or_else(|| corrupt("a plan without a start date".into()))?;
    let mut reference = vec![0u8; usize::from(fixed[25])];
    input.read_exact(&mut reference).map_err(spool_error)?;
    let local_reference = if reference.is_empty() {
        None
    } else {
        let text = String::from_utf8(reference).map_err(|error| corrupt(error.to_string()))?;
        Some(LocalReference::parse(&text).map_err(|error| corrupt(error.to_string()))?)
    };
    Plan::new(PlanFields {
        key: PlanKey {
            la,
            nhs_number,
            plan_type,
            start_date,
        },
        end_date: date(13)?,
        delete_date: date(17)?,
        expected_delivery_date: date(21)?,
        local_reference,
    })
    .map_err(|error| corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{test_nhs_number, test_plan};
    use time::macros::date;

    #[test]
    fn a_spool_gives_back_what_it_was_given_in_chunks() {
        let la = LaCode::parse("E09000007").unwrap();
        let mut plans: Vec<Plan> = (0..10)
            .map(|i| {
                test_plan(
                    "E09000007",
                    test_nhs_number(i),
                    PlanType::ALL[i as usize % 3],
                    date!(2026 - 01 - 05),
                )
            })
            .collect();
        let mut fields = PlanFields {
            key: *plans[0].key(),
            end_date: plans[0].end_date(),
            delete_date: Some(date!(2027 - 01 - 01)),
            expected_delivery_date: None,
            local_reference: Some(LocalReference::parse("REF-1").unwrap()),
        };
        fields.key.plan_type = PlanType::UnbornChildProtection;
        fields.expected_delivery_date = Some(date!(2027 - 02 - 01));
        plans.push(Plan::new(fields).unwrap());
        let mut writer = PlanSpoolWriter::new(la).unwrap();
        for plan in &plans {
            writer.push(plan).unwrap();
        }
        let foreign = test_plan(
            "E09000008",
            test_nhs_number(1),
            PlanType::LookedAfter,
            date!(2026 - 01 - 05),
        );
        assert!(writer.push(&foreign).is_err());
        let spooled = Plans::Spooled(writer.finish().unwrap());
        assert_eq!(spooled.len(), 11);
        for _ in 0..2 {
            let mut chunks = spooled.chunks(4).unwrap();
            let mut back = Vec::new();
            while let Some(chunk) = chunks.next_chunk().unwrap() {
                assert!(chunk.len() <= 4);
                back.extend_from_slice(&chunk);
            }
            assert_eq!(back, plans);
        }
    }
}
