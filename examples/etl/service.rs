//! A complaints service on 127.0.0.1, answering like the CFPB's consumer complaint database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State as Shared;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Starts the complaints service on a free port of 127.0.0.1, in the background. Returns its
/// URL and the number of requests it has answered so far.
pub async fn start_complaints_server() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    async fn complaints(Shared(requests): Shared<Arc<AtomicUsize>>) -> impl IntoResponse {
        requests.fetch_add(1, Ordering::SeqCst);
        ([(header::CONTENT_TYPE, "application/json")], COMPLAINTS)
    }

    let requests = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/complaints", get(complaints))
        .with_state(Arc::clone(&requests));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/complaints", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, requests))
}

/// What the service answers: 10 complaints in the shape of the CFPB's consumer complaint
/// database.
const COMPLAINTS: &str = r#"[
  {"complaint_id": 8215621, "date_received": "2024-02-01", "product": "Credit reporting or other personal consumer reports", "sub_product": "Credit reporting", "issue": "Incorrect information on your report", "sub_issue": "Information belongs to someone else", "company": "EQUIFAX, INC.", "state": "FL", "zip_code": "33101", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8215734, "date_received": "2024-02-01", "product": "Debt collection", "sub_product": "Medical debt", "issue": "Attempts to collect debt not owed", "sub_issue": "Debt was paid", "company": "Midland Credit Management, Inc.", "state": "TX", "zip_code": "75201", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8216002, "date_received": "2024-02-02", "product": "Checking or savings account", "sub_product": "Checking account", "issue": "Managing an account", "sub_issue": "Deposits and withdrawals", "company": "WELLS FARGO & COMPANY", "state": "CA", "zip_code": "94105", "submitted_via": "Phone", "company_response": "Closed with monetary relief", "timely": true},
  {"complaint_id": 8216178, "date_received": "2024-02-02", "product": "Credit card", "sub_product": "General-purpose credit card or charge card", "issue": "Problem with a purchase shown on your statement", "sub_issue": "Credit card company isn't resolving a dispute about a purchase on your statement", "company": "CAPITAL ONE FINANCIAL CORPORATION", "state": "NY", "zip_code": "10001", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8216455, "date_received": "2024-02-03", "product": "Mortgage", "sub_product": "Conventional home mortgage", "issue": "Trouble during payment process", "sub_issue": null, "company": "Rocket Mortgage, LLC", "state": "MI", "zip_code": "48226", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8216890, "date_received": "2024-02-03", "product": "Credit reporting or other personal consumer reports", "sub_product": "Credit reporting", "issue": "Improper use of your report", "sub_issue": "Reporting company used your report improperly", "company": "TRANSUNION INTERMEDIATE HOLDINGS, INC.", "state": "GA", "zip_code": "30303", "submitted_via": "Web", "company_response": "In progress", "timely": true},
  {"complaint_id": 8217013, "date_received": "2024-02-04", "product": "Money transfer, virtual currency, or money service", "sub_product": "Mobile or digital wallet", "issue": "Fraud or scam", "sub_issue": null, "company": "Block, Inc.", "state": "IL", "zip_code": "60601", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8217290, "date_received": "2024-02-04", "product": "Student loan", "sub_product": "Federal student loan servicing", "issue": "Dealing with your lender or servicer", "sub_issue": "Received bad information about your loan", "company": "Nelnet, Inc.", "state": "NE", "zip_code": "68508", "submitted_via": "Referral", "company_response": "Closed with explanation", "timely": false},
  {"complaint_id": 8217544, "date_received": "2024-02-05", "product": "Vehicle loan or lease", "sub_product": "Loan", "issue": "Managing the loan or lease", "sub_issue": "Billing problem", "company": "Santander Consumer USA Holdings Inc.", "state": "AZ", "zip_code": "85004", "submitted_via": "Web", "company_response": "Closed with non-monetary relief", "timely": true},
  {"complaint_id": 8217801, "date_received": "2024-02-05", "product": "Checking or savings account", "sub_product": "Savings account", "issue": "Opening an account", "sub_issue": "Account opened without my consent or knowledge", "company": "JPMORGAN CHASE & CO.", "state": "OH", "zip_code": "43215", "submitted_via": "Postal mail", "company_response": "Closed with explanation", "timely": true}
]"#;
