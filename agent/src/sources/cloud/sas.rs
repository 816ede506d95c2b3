//! Security Center (`Sas` 2018-12-03) answers: the instance's unhandled alerts
//! (`DescribeSuspEvents`), as the official SDK's response model gives them.

use serde_json::Value;

use super::text;
use crate::snapshot::SecurityAlert;

pub const VERSION: &str = "2018-12-03";

/// Security Center answers at one endpoint for the Chinese mainland and one for the rest.
pub fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") && region != "cn-hongkong" {
        "https://tds.aliyuncs.com".to_string()
    } else {
        "https://tds.ap-southeast-1.aliyuncs.com".to_string()
    }
}

/// `YYYY-MM-DD HH:mm:ss` (UTC), the format of DescribeSuspEvents' TimeStart/TimeEnd.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    utc_text(t, ' ')
}

/// `YYYY-MM-DD?HH:MM:SS` of a UTC time, `between` for `?` (the OpenAPI date takes `T`).
pub(crate) fn utc_text(t: time::OffsetDateTime, between: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{between}{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// DescribeSuspEvents: the alerts of `instance_id` (the request's `Remark` matches by address,
/// fuzzily, so other instances' alerts are dropped here).
pub fn parse_alerts(v: &Value, instance_id: &str) -> Result<Vec<SecurityAlert>, String> {
    let list = v
        .get("SuspEvents")
        .and_then(Value::as_array)
        .ok_or("DescribeSuspEvents: the answer has no SuspEvents list")?;
    Ok(list
        .iter()
        .filter(|e| text(e, "InstanceId") == Some(instance_id))
        .map(|e| SecurityAlert {
            id: e.get("Id").and_then(Value::as_i64),
            name: text(e, "AlarmEventNameDisplay")
                .or_else(|| text(e, "AlarmEventName"))
                .or_else(|| text(e, "Name"))
                .unwrap_or("an unnamed alert")
                .to_string(),
            level: text(e, "Level").unwrap_or("unknown").to_ascii_lowercase(),
            last_time: text(e, "LastTime").map(str::to_string),
            instance_id: text(e, "InstanceId").map(str::to_string),
            status: e.get("EventStatus").and_then(Value::as_i64),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_of_this_instance_only() {
        let v = serde_json::json!({"Count": 2, "SuspEvents": [
            {"Id": 7, "AlarmEventNameDisplay": "Reverse shell", "Level": "serious", "LastTime": "2026-12-06 01:02:03",
             "InstanceId": "i-made-up", "EventStatus": 1},
            {"Id": 8, "AlarmEventNameDisplay": "Other box", "Level": "serious", "InstanceId": "i-other"}]});
        let a = parse_alerts(&v, "i-made-up").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].name.as_str(), a[0].level.as_str()),
            ("Reverse shell", "serious")
        );
        assert!(parse_alerts(&serde_json::json!({}), "i").is_err());
        let t = time::OffsetDateTime::from_unix_timestamp(86_400 + 3_723).unwrap();
        assert_eq!(timestamp(t), "1970-01-02 01:02:03");
    }
}
