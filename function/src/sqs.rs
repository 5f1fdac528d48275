//! [`FailedEvents`] over aws-sdk-sqs: the failed-events queue named by `FAILED_EVENTS_QUEUE`
//! (its ARN, set by the deployer). The queue URL is asked of SQS (`GetQueueUrl`) on the first
//! permanent failure and kept, so the common path makes no SQS call at all.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use crate::store::{FailedEvents, QueueError};

/// The queue's account and name, from `arn:<partition>:sqs:<region>:<account>:<name>`.
pub fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", _, account, name] if !account.is_empty() && !name.is_empty() => {
            Some((account, name))
        }
        _ => None,
    }
}

/// The failed-events queue, or none when `FAILED_EVENTS_QUEUE` is unset.
#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    arn: Option<String>,
    url: OnceCell<String>,
}

impl SqsQueue {
    pub fn new(client: Client, arn: Option<String>) -> SqsQueue {
        SqsQueue {
            client,
            arn: arn.filter(|a| !a.trim().is_empty()),
            url: OnceCell::new(),
        }
    }

    fn error<E>(&self, what: &str, e: SdkError<E>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        QueueError {
            queue: self.arn.clone().unwrap_or_default(),
            code: e.code().map(str::to_owned),
            message: match e.message() {
                Some(m) => format!("{what}: {m}"),
                None => format!("{what}: {}", DisplayErrorContext(&e)),
            },
        }
    }

    async fn url(&self) -> Result<&str, QueueError> {
        let arn = self.arn.as_deref().unwrap_or_default();
        let (account, name) = parse_queue_arn(arn).ok_or_else(|| QueueError {
            queue: arn.to_owned(),
            code: None,
            message: "FAILED_EVENTS_QUEUE is not an SQS queue ARN".to_owned(),
        })?;
        self.url
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_queue_url()
                    .queue_name(name)
                    .queue_owner_aws_account_id(account)
                    .send()
                    .await
                    .map_err(|e| self.error("GetQueueUrl", e))?;
                out.queue_url()
                    .map(str::to_owned)
                    .ok_or_else(|| QueueError {
                        queue: arn.to_owned(),
                        code: None,
                        message: "GetQueueUrl answered no URL".to_owned(),
                    })
            })
            .await
            .map(String::as_str)
    }
}

impl FailedEvents for SqsQueue {
    fn configured(&self) -> bool {
        self.arn.is_some()
    }

    async fn send(&self, body: String) -> Result<(), QueueError> {
        let url = self.url().await?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("SendMessage", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_give_account_and_name() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:eu-west-1:123456789012:csv-ingest-failed-events"),
            Some(("123456789012", "csv-ingest-failed-events"))
        );
        assert_eq!(
            parse_queue_arn("arn:aws-cn:sqs:cn-north-1:1:q"),
            Some(("1", "q"))
        );
        for bad in [
            "",
            "q",
            "arn:aws:sns:eu-west-1:1:q",
            "arn:aws:sqs:eu-west-1::q",
        ] {
            assert_eq!(parse_queue_arn(bad), None, "{bad}");
        }
    }
}
